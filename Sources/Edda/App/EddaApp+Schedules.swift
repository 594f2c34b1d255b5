public import Foundation

/// The ``client``'s schedule operations, on the app: each does exactly what the ``EddaClient``
/// method of the same name does.
extension EddaApp {
    /// Registers `schedule` and its workflow; the worker writes it to the store when it starts and
    /// starts its ticks: ``EddaClient/register(_:)-(Schedule)``.
    public func register(_ schedule: Schedule) throws {
        try client.register(schedule)
    }

    /// Creates a schedule at run time: ``EddaClient/createSchedule(_:workflowNamed:spec:input:overlap:catchUpWindow:queue:priority:)``.
    @discardableResult
    public func createSchedule(
        _ name: String, workflowNamed workflowName: String, spec: ScheduleSpec, input: JSONPayload = JSONPayload(json: "[]"),
        overlap: Schedule.OverlapPolicy = .skip, catchUpWindow: Duration = Schedule.defaultCatchUpWindow, queue: String? = nil, priority: Int = 0
    ) async throws -> ScheduleRecord {
        try await client.createSchedule(
            name, workflowNamed: workflowName, spec: spec, input: input, overlap: overlap, catchUpWindow: catchUpWindow, queue: queue,
            priority: priority
        )
    }

    /// Every schedule in the store: ``EddaClient/schedules()``.
    public func schedules() async throws -> [ScheduleRecord] {
        try await client.schedules()
    }

    /// The schedule named `name`, if there is one: ``EddaClient/schedule(named:)``.
    public func schedule(named name: String) async throws -> ScheduleRecord? {
        try await client.schedule(named: name)
    }

    /// Pauses a schedule: ``EddaClient/pauseSchedule(_:)``.
    @discardableResult
    public func pauseSchedule(_ name: String) async throws -> ScheduleRecord {
        try await client.pauseSchedule(name)
    }

    /// Resumes a paused schedule from now on: ``EddaClient/resumeSchedule(_:)``.
    @discardableResult
    public func resumeSchedule(_ name: String) async throws -> ScheduleRecord {
        try await client.resumeSchedule(name)
    }

    /// Starts the schedule's workflow now: ``EddaClient/triggerSchedule(_:)``.
    @discardableResult
    public func triggerSchedule(_ name: String) async throws -> String {
        try await client.triggerSchedule(name)
    }

    /// Starts the schedule's ticks in a time range: ``EddaClient/backfillSchedule(_:from:through:)``.
    @discardableResult
    public func backfillSchedule(_ name: String, from start: Date, through end: Date) async throws -> [String] {
        try await client.backfillSchedule(name, from: start, through: end)
    }

    /// Deletes a schedule: ``EddaClient/deleteSchedule(_:)``.
    public func deleteSchedule(_ name: String) async throws {
        try await client.deleteSchedule(name)
    }

    /// Writes the registered schedules to the store, then runs one pass of the scheduler now, as
    /// the running app's does every poll interval. For tests that move a manual clock.
    package func passSchedules() async throws {
        try await client.declareSchedules()
        await Scheduler(client: client).pass()
    }
}
