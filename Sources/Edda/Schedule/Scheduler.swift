import Foundation
import Logging
import ServiceLifecycle

/// Starts the due ticks of the schedules this app can start: those of a workflow it registers whose
/// input is stored, or is built by a schedule it registers. A running ``EddaApp`` runs one beside
/// its worker.
///
/// Every ``EddaApp/Configuration-swift.struct/pollInterval`` but at most once a second (sooner when a
/// tick is due sooner), it reads the schedules, and for each with work to do decides what to start
/// (``SchedulePlan``), starts it under the ticks' deterministic instance IDs, then writes the
/// schedule's new state if its revision has not moved (``ScheduleStore/updateSchedule(_:)``). Time
/// is the configured clock's.
struct Scheduler: Sendable {
    let client: EddaClient
    /// The scheduler reads the schedules at most this often, however short the poll interval (a tick
    /// due sooner is still started on time).
    static let minimumInterval = Duration.seconds(1)
    /// At most this many ticks of each kind (requested, due) start in one pass of one schedule.
    static let ticksPerPass = 100

    var store: any Store { client.store }
    var clock: any WorkflowClock { client.configuration.clock }
    var logger: Logger { client.logger }

    /// Writes the registered schedules to the store, then passes until graceful shutdown or cancellation.
    func run() async {
        // The schedules written to the store by name: one registered after the app started is written at the next pass.
        var declared: Set<String> = []
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let registered = Set(client.registry.schedules.map(\.name))
            if registered != declared {
                do {
                    try await client.declareSchedules()
                    declared = registered
                } catch {
                    logger.debug("declaring schedules failed; trying again", metadata: ["edda.error": "\(error)"])
                }
            }
            let next = await passUnlessCancelled()
            var delay = max(client.configuration.pollInterval, Self.minimumInterval)
            if clock.isRealTime, let next {
                delay = min(delay, .seconds(max(next.timeIntervalSince(clock.now()), 0)))
            }
            do {
                // On the real clock, not the configured one: a manual clock in a test sees no sleeper of ours.
                let wait = delay
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            } catch {
                return
            }
        }
    }

    /// Runs ``pass()``, but returns `nil` at once when the task is cancelled: the app's shutdown never
    /// waits for a store call of the scheduler (the pass is cancelled, and ends on its own).
    private func passUnlessCancelled() async -> Date? {
        let results = AsyncStream<Date?> { continuation in
            let pass = Task {
                continuation.yield(await self.pass())
                continuation.finish()
            }
            continuation.onTermination = { _ in pass.cancel() }
        }
        for await next in results { return next }
        return nil
    }

    /// One pass over every schedule. Returns the earliest next tick of those this app starts.
    @discardableResult
    func pass() async -> Date? {
        // The time is read with the schedules, once: a pass judges what is due as of its read, so a
        // pause (or a clock moved) after the read is not mixed with the state from before it.
        let now = clock.now()
        let records: [ScheduleRecord]
        do {
            records = try await store.schedules()
        } catch {
            logger.debug("reading schedules failed; trying again at the next pass", metadata: ["edda.error": "\(error)"])
            return nil
        }
        var earliest: Date?
        for record in records {
            guard let input = inputBuilder(for: record), let spec = record.spec else { continue }
            do {
                if let next = try await advance(record, spec: spec, input: input, now: now) {
                    earliest = min(earliest ?? next, next)
                }
            } catch {
                logger.debug("a schedule's pass failed; trying again at the next pass", metadata: metadata(record, ["edda.error": "\(error)"]))
            }
        }
        return earliest
    }

    /// How this app builds the input of `record`'s instances, or `nil` if it does not start them.
    private func inputBuilder(for record: ScheduleRecord) -> (@Sendable (Date) throws -> JSONPayload)? {
        guard client.registry.registration(named: record.workflowName) != nil else { return nil }
        if let fixed = record.input { return { _ in fixed } }
        guard let declared = client.registry.schedule(named: record.name), declared.workflowName == record.workflowName,
            case .built(let build) = declared.input
        else { return nil }
        return build
    }

    /// Starts what is due of one schedule and writes its new state. Returns its next tick.
    private func advance(
        _ record: ScheduleRecord, spec: ScheduleSpec, input: @Sendable (Date) throws -> JSONPayload, now: Date
    ) async throws -> Date? {
        let due = !record.paused && (record.nextTick.map { $0 <= now } ?? false || !record.bufferedTicks.isEmpty)
        guard due || !record.requestedTicks.isEmpty else { return record.paused ? nil : record.nextTick }
        let previousRunning = try await isUnfinished(record.lastInstanceID)
        var plan = SchedulePlan(
            record, spec: spec, now: now, grace: max(client.configuration.pollInterval, Self.minimumInterval), previousRunning: previousRunning,
            limit: Self.ticksPerPass
        )
        if plan.skippedLate > 0 {
            logger.debug(
                "schedule ticks older than the catch-up window skipped",
                metadata: metadata(
                    record, ["edda.schedule.skipped": "\(plan.skippedLate)", "edda.schedule.first_skipped": "\(plan.firstSkippedLate!)"])
            )
        }
        for tick in plan.skippedOverlapping {
            logger.debug("schedule tick skipped: the previous instance still runs", metadata: metadata(record, ["edda.schedule.tick": "\(tick)"]))
        }
        if plan.cancelPrevious, let previous = record.lastInstanceID {
            _ = try? await client.requestCancellation(of: previous)
        }
        for tick in plan.starts {
            try await start(record, tick: tick, input: try input(tick))
        }
        guard plan.record != record else { return plan.record.paused ? nil : plan.record.nextTick }
        plan.record.updatedAt = now
        if try await !store.updateSchedule(plan.record) {
            // Another worker (or a pause, a trigger) wrote it first: the next pass reads its state.
            logger.debug("schedule changed meanwhile; reading it again at the next pass", metadata: metadata(record))
        }
        return plan.record.paused ? nil : plan.record.nextTick
    }

    /// Starts `tick`'s instance (on the schedule's queue, if it names one), or finds it started.
    private func start(_ record: ScheduleRecord, tick: Date, input: JSONPayload) async throws {
        let id = Schedule.instanceID(schedule: record.name, tick: tick)
        let placement = record.queue.map { QueuePlacement(queue: $0, priority: record.priority) }
        // A queue this app registers has its limits written first, as a start on it does; one only
        // declared in the store keeps the limits written there.
        if let queue = record.queue.flatMap(client.registry.queue(named:)) { try await client.declare(queue) }
        let timeouts = client.registry.registration(named: record.workflowName)?.timeouts ?? .none
        do {
            _ = try await client.create(record.workflowName, input: input, instanceID: id, placement: placement, timeouts: timeouts)
            logger.debug("schedule tick started", metadata: metadata(record, ["edda.instance.id": "\(id)"]))
        } catch let error as EngineError where error.code == .instanceAlreadyExists {
            // Started before with another input (an input built from more than the tick): it stands.
            logger.debug("schedule tick already started", metadata: metadata(record, ["edda.instance.id": "\(id)"]))
        }
    }

    private func isUnfinished(_ instanceID: String?) async throws -> Bool {
        guard let instanceID, let instance = try await store.instance(instanceID) else { return false }
        return !instance.status.isTerminal
    }

    private func metadata(_ record: ScheduleRecord, _ more: Logger.Metadata = [:]) -> Logger.Metadata {
        more.merging(["edda.schedule": "\(record.name)"]) { $1 }
    }
}
