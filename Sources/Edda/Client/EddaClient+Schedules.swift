public import Foundation
import Logging

/// Schedules: declared in code (``register(_:)-(Schedule)``) or created at run time, listed, paused,
/// resumed, triggered and backfilled. A running app's worker starts their ticks (see ``Schedule``).
extension EddaClient {
    /// The most ticks one ``backfillSchedule(_:from:through:)`` asks for.
    public static let maxBackfillTicks = 1000

    /// Registers `schedule` and its workflow with this client's registry: the app's worker writes
    /// it to the store when it starts and starts its ticks. Registering a schedule again with
    /// another definition replaces the stored one (its spec changed: its next tick is computed
    /// anew); whether it is paused is kept.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/workflowNameTaken`` when
    ///   another workflow is registered under its workflow's name.
    public func register(_ schedule: Schedule) throws {
        try registry.register(schedule)
    }

    /// Writes the registered schedules to the store: inserts the new ones, updates those whose
    /// definition changed.
    func declareSchedules() async throws {
        let now = configuration.clock.now()
        for schedule in registry.schedules {
            let wanted = schedule.record(now: now)
            if try await store.insertSchedule(wanted) { continue }
            try await modifySchedule(schedule.name) { stored in
                guard !stored.sameDefinition(as: wanted) else { return false }
                if stored.expression != wanted.expression || stored.timeZone != wanted.timeZone { stored.nextTick = wanted.nextTick }
                (stored.workflowName, stored.expression, stored.timeZone) = (wanted.workflowName, wanted.expression, wanted.timeZone)
                (stored.input, stored.overlap, stored.catchUpWindow) = (wanted.input, wanted.overlap, wanted.catchUpWindow)
                (stored.queue, stored.priority) = (wanted.queue, wanted.priority)
                return true
            }
        }
    }

    /// Creates a schedule at run time, stored for every worker: a worker that registers
    /// `workflowName` starts its ticks.
    ///
    /// ```swift
    /// try await client.createSchedule(
    ///     "hourly-sync", workflowNamed: "sync_accounts", spec: try ScheduleSpec(expression: "@every 1h"),
    ///     input: JSONPayload(json: #"["all"]"#)
    /// )
    /// ```
    ///
    /// - Parameters:
    ///   - name: The schedule's name, unique per store; part of every instance ID it starts.
    ///   - workflowName: The workflow it starts.
    ///   - spec: When it ticks.
    ///   - input: The workflow's arguments as a JSON array (one element per argument), the same for every tick.
    ///   - overlap: What a tick does while the previous instance still runs.
    ///   - catchUpWindow: How late a missed tick may still start.
    ///   - queue: The queue each tick's instance starts on (``InstanceStatus/queued`` until admitted),
    ///     or `nil` (the default) to start it at once. It must be registered with this client or
    ///     declared in the store (by an app that registers it), and not partitioned.
    ///   - priority: On `queue`: lower numbers are admitted first; 0 by default.
    /// - Returns: The schedule as stored.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleAlreadyExists``,
    ///   ``EngineError/Code-swift.struct/invalidInput`` when `workflowName` is registered here and
    ///   `input` is not valid for it, ``EngineError/Code-swift.struct/unknownQueue`` when `queue` is
    ///   neither registered nor declared, or ``EngineError/Code-swift.struct/invalidQueueOptions``
    ///   (a partitioned queue; a priority without a queue). Nothing is written then.
    @discardableResult
    public func createSchedule(
        _ name: String, workflowNamed workflowName: String, spec: ScheduleSpec, input: JSONPayload = JSONPayload(json: "[]"),
        overlap: Schedule.OverlapPolicy = .skip, catchUpWindow: Duration = Schedule.defaultCatchUpWindow, queue: String? = nil, priority: Int = 0
    ) async throws -> ScheduleRecord {
        guard !name.isEmpty, !name.contains(where: \.isNewline), catchUpWindow >= .zero else {
            throw EngineError(.invalidSchedule, "A schedule needs a name on one line and a catch-up window of zero or more. Nothing was created.")
        }
        try await checkScheduleQueue(queue, priority: priority, schedule: name)
        if let registration = registry.registration(named: workflowName) {
            do {
                try registration.checkInput(input)
            } catch {
                throw EngineError(
                    .invalidInput, "Input for workflow '\(workflowName)' of schedule '\(name)' is invalid: \(error). Nothing was created.",
                    cause: error
                )
            }
        }
        let now = configuration.clock.now()
        let record = ScheduleRecord(
            name: name, workflowName: workflowName, spec: spec, input: input, overlap: overlap, catchUpWindow: catchUpWindow, queue: queue,
            priority: priority, nextTick: spec.nextTick(after: now), updatedAt: now
        )
        guard try await store.insertSchedule(record) else {
            throw EngineError(
                .scheduleAlreadyExists, "A schedule named '\(name)' exists already; nothing was created. Delete it first, or pick another name.")
        }
        logger.debug("schedule created", metadata: ["edda.schedule": "\(name)"])
        return record
    }

    /// Throws unless a schedule's ticks can start on `queue` with `priority`: a queue registered here
    /// or declared in the store, not partitioned; no priority without a queue.
    private func checkScheduleQueue(_ queue: String?, priority: Int, schedule name: String) async throws {
        guard let queue else {
            guard priority == 0 else {
                throw EngineError(
                    .invalidQueueOptions, "Schedule '\(name)': a priority applies to a schedule on a queue; name the queue too. Nothing was created.")
            }
            return
        }
        let known: [(name: String, partitioned: Bool)]
        if let registered = registry.queue(named: queue) {
            known = [(registered.name, registered.partitioned)]
        } else {
            known = try await store.queues().map { ($0.name, $0.partitioned) }
        }
        guard let found = known.first(where: { $0.name == queue }) else {
            let names = Set(registry.queues.map(\.name) + known.map(\.name)).sorted()
            throw EngineError(
                .unknownQueue,
                "Schedule '\(name)': no queue named '\(queue)' is registered with this app or declared in the store, so nothing was created. "
                    + (names.isEmpty ? "There is no queue: " : "Known: \(names.joined(separator: ", ")). ")
                    + "Register it with app.register(Queue(\"\(queue)\", …)) in the app that runs the schedule's workflow."
            )
        }
        if found.partitioned {
            throw EngineError(
                .invalidQueueOptions,
                "Schedule '\(name)': queue '\(queue)' is partitioned, and a tick has no partition key to give. Nothing was created; "
                    + "put the schedule on a queue that is not partitioned."
            )
        }
    }

    /// Every schedule in the store, by name.
    public func schedules() async throws -> [ScheduleRecord] {
        try await store.schedules()
    }

    /// The schedule named `name`, if there is one.
    public func schedule(named name: String) async throws -> ScheduleRecord? {
        try await store.schedule(named: name)
    }

    /// Pauses a schedule: no tick starts until it is resumed. Instances it started keep running;
    /// a trigger or a backfill still starts.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleNotFound``.
    @discardableResult
    public func pauseSchedule(_ name: String) async throws -> ScheduleRecord {
        try await modifySchedule(name) { record in
            guard !record.paused else { return false }
            record.paused = true
            return true
        }
    }

    /// Resumes a paused schedule from now on: the ticks that passed while it was paused do not start.
    ///
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleNotFound``.
    @discardableResult
    public func resumeSchedule(_ name: String) async throws -> ScheduleRecord {
        let now = configuration.clock.now()
        return try await modifySchedule(name) { record in
            guard record.paused else { return false }
            record.paused = false
            record.nextTick = record.spec?.nextTick(after: now)
            return true
        }
    }

    /// Starts the schedule's workflow now, whatever its spec, overlap policy or pause: a tick at the
    /// current time (to the second), started by the next pass of a worker that starts the
    /// schedule's ticks (within its poll interval).
    ///
    /// - Returns: The ID the instance gets (``Schedule/instanceID(schedule:tick:)``); two triggers
    ///   within the same second start one instance.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleNotFound``.
    @discardableResult
    public func triggerSchedule(_ name: String) async throws -> String {
        let tick = Date(timeIntervalSince1970: configuration.clock.now().timeIntervalSince1970.rounded(.down))
        try await requestTicks([tick], of: name)
        return Schedule.instanceID(schedule: name, tick: tick)
    }

    /// Starts the schedule's ticks from `start` through `end` (both included), whatever its overlap
    /// policy or pause, as the next pass of a worker that starts its ticks can: a hundred per pass.
    /// A tick that already started (as scheduled, or by an earlier backfill) is not started again.
    ///
    /// - Returns: The IDs of the ticks' instances, in order.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleNotFound``, or
    ///   ``EngineError/Code-swift.struct/invalidSchedule`` when the range runs backwards or holds more
    ///   than ``maxBackfillTicks`` ticks. Nothing is asked for then.
    @discardableResult
    public func backfillSchedule(_ name: String, from start: Date, through end: Date) async throws -> [String] {
        guard let record = try await store.schedule(named: name) else { throw Self.noSchedule(name) }
        guard start <= end, let spec = record.spec else {
            throw EngineError(.invalidSchedule, "Backfill of schedule '\(name)': the range must start before it ends, and the spec must be readable.")
        }
        let ticks = spec.ticks(from: start, through: end, limit: Self.maxBackfillTicks + 1)
        guard ticks.count <= Self.maxBackfillTicks else {
            throw EngineError(
                .invalidSchedule,
                "Backfill of schedule '\(name)': the range holds more than \(Self.maxBackfillTicks) ticks. Nothing was asked for; "
                    + "backfill a shorter range at a time."
            )
        }
        try await requestTicks(ticks, of: name)
        return ticks.map { Schedule.instanceID(schedule: name, tick: $0) }
    }

    /// Deletes a schedule: no more ticks start. The instances it started are kept.
    ///
    /// A schedule declared in code is written again when an app that registers it starts.
    /// - Throws: ``EngineError`` with code ``EngineError/Code-swift.struct/scheduleNotFound``.
    public func deleteSchedule(_ name: String) async throws {
        guard try await store.deleteSchedule(named: name) else { throw Self.noSchedule(name) }
    }

    private func requestTicks(_ ticks: [Date], of name: String) async throws {
        try await modifySchedule(name) { record in
            let new = ticks.filter { !record.requestedTicks.contains($0) }
            record.requestedTicks += new
            return !new.isEmpty
        }
    }

    /// Reads the schedule, lets `change` change it (it returns whether it did) and writes it back if
    /// nobody wrote it meanwhile; reads it again otherwise. Returns the schedule as stored.
    @discardableResult
    private func modifySchedule(_ name: String, _ change: (inout ScheduleRecord) -> Bool) async throws -> ScheduleRecord {
        for _ in 0..<50 {
            guard var record = try await store.schedule(named: name) else { throw Self.noSchedule(name) }
            guard change(&record) else { return record }
            record.updatedAt = configuration.clock.now()
            if try await store.updateSchedule(record) {
                record.revision += 1
                return record
            }
        }
        throw StoreError(.database, "Schedule '\(name)' kept changing while it was being written; nothing was changed. Try again.")
    }

    package static func noSchedule(_ name: String) -> EngineError {
        EngineError(.scheduleNotFound, "No schedule is named '\(name)'; nothing was changed. `edda schedules list` lists the schedules.")
    }
}
