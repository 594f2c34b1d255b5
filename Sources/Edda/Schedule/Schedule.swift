public import Foundation

/// Starts a workflow on a cron expression or at a fixed interval.
///
/// Declare a schedule in code and register it with the app (its worker writes it to the store when
/// it starts), or create one at run time (``EddaClient/createSchedule(_:workflowNamed:spec:input:overlap:catchUpWindow:queue:priority:)``,
/// the HTTP API, `edda schedules create`):
///
/// ```swift
/// let report = Workflow("nightly_report") { (ctx, day: Date) -> Int in … }
/// let nightly = Schedule(
///     "nightly-report", report, try .cron("0 2 * * *", timeZone: TimeZone(identifier: "Europe/Paris")!),
///     input: { scheduledTime in scheduledTime }
/// )
/// try app.register(nightly)
/// ```
///
/// Each tick starts one instance with the ID ``instanceID(schedule:tick:)`` —
/// `sched:<name>:<tick in ISO 8601 UTC>` — so that however many workers run, and whatever crashes,
/// a tick never starts twice: a second start of the same ID finds the first instance. When the
/// previous instance still runs at a tick, the ``OverlapPolicy`` decides. Ticks missed while no
/// worker ran start late if they are within the ``catchUpWindow``, and are skipped (logged at debug)
/// if older.
///
/// A schedule on a ``Queue`` starts each tick's instance on it, as
/// ``EddaClient/start(_:_:instanceID:on:priority:deduplicationID:partitionKey:queueTimeout:timeout:runTimeout:)`` does: the
/// instance is ``InstanceStatus/queued`` until a worker admits it within the queue's limits, and
/// counts as still running for the overlap policy meanwhile.
///
/// ```swift
/// let reports = Queue("reports", concurrency: 2)
/// let hourly = Schedule("hourly-report", report, try .cron("0 * * * *"), on: reports, priority: 5, input: { $0 })
/// ```
public struct Schedule: Sendable {
    /// What a tick does while the schedule's previous instance is still running (or queued).
    public enum OverlapPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        /// The tick is dropped. The default.
        case skip
        /// The tick waits and starts once the previous instance finishes; at most one tick waits,
        /// later ones are dropped.
        case bufferOne
        /// Every tick waits, and they start one after another, each once the one before it finishes.
        case bufferAll
        /// The previous instance is cancelled and the tick starts at once.
        case cancelOther
        /// The tick starts at once: instances may run side by side.
        case allowAll
    }

    /// The input of each instance: fixed (stored with the schedule), or built by this process from
    /// the tick.
    enum Input: Sendable {
        case fixed(JSONPayload)
        case built(@Sendable (Date) throws -> JSONPayload)
    }

    /// The schedule's name, unique per store.
    public let name: String
    /// The workflow it starts.
    public let workflowName: String
    /// When it ticks.
    public let spec: ScheduleSpec
    /// What a tick does while the previous instance still runs.
    public let overlap: OverlapPolicy
    /// How late a tick may still start: ticks missed for longer (no worker ran) are skipped.
    public let catchUpWindow: Duration
    /// The queue each tick's instance starts on, or `nil` to start it at once.
    public let queue: Queue?
    /// On ``queue``: the priority of each tick's instance (lower numbers are admitted first).
    public let priority: Int
    let input: Input
    let registration: RegisteredWorkflow

    /// The default ``catchUpWindow``: one minute.
    public static let defaultCatchUpWindow = Duration.seconds(60)

    /// A schedule whose instances get their argument from `input`, called with the tick's time.
    ///
    /// - Parameters:
    ///   - name: The schedule's name, unique per store; part of every instance ID it starts.
    ///   - workflow: The workflow to start; registered with the app with the schedule.
    ///   - spec: When it ticks.
    ///   - queue: The queue each tick's instance starts on (registered with the app with the
    ///     schedule), or `nil` (the default) to start it at once. A partitioned queue is refused:
    ///     a tick has no partition key to give.
    ///   - priority: On `queue`: lower numbers are admitted first; 0 by default.
    ///   - overlap: What a tick does while the previous instance still runs; ``OverlapPolicy/skip`` by default.
    ///   - catchUpWindow: How late a missed tick may still start; one minute by default.
    ///   - input: Builds the argument from the tick's time (the time it was due, not the time it started).
    public init<Argument, Output>(
        _ name: String, _ workflow: Workflow<Argument, Output>, _ spec: ScheduleSpec, on queue: Queue? = nil, priority: Int = 0,
        overlap: OverlapPolicy = .skip, catchUpWindow: Duration = Schedule.defaultCatchUpWindow,
        input: @escaping @Sendable (_ scheduledTime: Date) -> Argument
    ) {
        self.init(
            name, workflow.registration, spec, queue, priority, overlap, catchUpWindow, .built { try JSONPayload.encode(ArgumentList(input($0))) }
        )
    }

    /// A schedule whose instances all get `input` as their argument.
    ///
    /// The other parameters are those of the initializer that builds the input from the tick; `input`
    /// is stored with the schedule, so that any worker running the workflow can start its ticks.
    public init<Argument, Output>(
        _ name: String, _ workflow: Workflow<Argument, Output>, _ spec: ScheduleSpec, on queue: Queue? = nil, priority: Int = 0,
        overlap: OverlapPolicy = .skip, catchUpWindow: Duration = Schedule.defaultCatchUpWindow, input: Argument
    ) {
        guard let payload = try? JSONPayload.encode(ArgumentList(input)) else {
            preconditionFailure("Schedule '\(name)': its input cannot be encoded as JSON.")
        }
        self.init(name, workflow.registration, spec, queue, priority, overlap, catchUpWindow, .fixed(payload))
    }

    /// A schedule of a workflow that takes no argument.
    public init<Output>(
        _ name: String, _ workflow: Workflow<Output>, _ spec: ScheduleSpec, on queue: Queue? = nil, priority: Int = 0,
        overlap: OverlapPolicy = .skip, catchUpWindow: Duration = Schedule.defaultCatchUpWindow
    ) {
        self.init(name, workflow.registration, spec, queue, priority, overlap, catchUpWindow, .fixed(JSONPayload(json: "[]")))
    }

    private init(
        _ name: String, _ registration: RegisteredWorkflow, _ spec: ScheduleSpec, _ queue: Queue?, _ priority: Int, _ overlap: OverlapPolicy,
        _ window: Duration, _ input: Input
    ) {
        precondition(!name.isEmpty && !name.contains(where: \.isNewline), "A schedule needs a name, on one line.")
        precondition(window >= .zero, "Schedule '\(name)': the catch-up window cannot be negative.")
        precondition(
            !(queue?.partitioned ?? false),
            "Schedule '\(name)': queue '\(queue?.name ?? "")' is partitioned, and a tick has no partition key to give. Put the schedule on a "
                + "queue that is not partitioned."
        )
        precondition(queue != nil || priority == 0, "Schedule '\(name)': a priority applies to a schedule on a queue; pass on: too.")
        self.queue = queue
        self.priority = priority
        self.name = name
        self.workflowName = registration.name
        self.registration = registration
        self.spec = spec
        self.overlap = overlap
        self.catchUpWindow = window
        self.input = input
    }

    /// The ID of the instance that `schedule`'s tick at `tick` starts: `sched:<name>:<tick>`, the tick
    /// in ISO 8601 UTC to the second (`sched:nightly-report:2026-03-29T00:00:00Z`).
    public static func instanceID(schedule: String, tick: Date) -> String {
        instanceIDPrefix(schedule: schedule) + tick.formatted(.iso8601)
    }

    /// What the ID of every instance of `schedule`'s ticks starts with: `sched:<name>:`.
    public static func instanceIDPrefix(schedule: String) -> String {
        "sched:\(schedule):"
    }

    /// The record a worker writes to the store for this schedule, first ticking after `now`.
    func record(now: Date) -> ScheduleRecord {
        var fixedInput: JSONPayload?
        if case .fixed(let payload) = input { fixedInput = payload }
        return ScheduleRecord(
            name: name, workflowName: workflowName, spec: spec, input: fixedInput, overlap: overlap, catchUpWindow: catchUpWindow,
            queue: queue?.name, priority: priority, nextTick: spec.nextTick(after: now), updatedAt: now
        )
    }
}
