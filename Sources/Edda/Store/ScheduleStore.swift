public import Foundation

/// Schedules as the store holds them: definitions and their ticking state, one row per schedule.
///
/// Every change goes through a compare-and-set on ``ScheduleRecord/revision``: a worker reads a
/// schedule, decides which ticks to start, starts them (each under its deterministic instance ID,
/// so that starting one twice finds the first) and then writes the new state only if nobody wrote
/// the schedule since. Two workers deciding on the same tick therefore start one instance, and only
/// one of them moves the schedule on.
public protocol ScheduleStore: Sendable {
    /// Every schedule, by name.
    func schedules() async throws -> [ScheduleRecord]

    /// The schedule named `name`, if there is one.
    func schedule(named name: String) async throws -> ScheduleRecord?

    /// Inserts `schedule` with revision 1 unless a schedule of that name exists. Returns whether it
    /// was inserted.
    @_spi(EddaStores) func insertSchedule(_ schedule: ScheduleRecord) async throws -> Bool

    /// Replaces the schedule of that name with `schedule` and revision `schedule.revision + 1`, only
    /// if its stored revision is still `schedule.revision`. Returns whether it was replaced.
    @_spi(EddaStores) func updateSchedule(_ schedule: ScheduleRecord) async throws -> Bool

    /// Deletes the schedule named `name`. Returns whether it existed. Its instances are kept.
    @_spi(EddaStores) func deleteSchedule(named name: String) async throws -> Bool
}

extension ScheduleStore {
    /// None: this store keeps no schedule.
    public func schedules() async throws -> [ScheduleRecord] { [] }

    /// None: this store keeps no schedule.
    public func schedule(named name: String) async throws -> ScheduleRecord? { nil }

    /// Refuses: this store keeps no schedule.
    @_spi(EddaStores) public func insertSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        throw StoreError(.database, "\(Self.self) keeps no schedule; nothing was written. Use SQLiteStore or PostgresStore.")
    }

    /// Refuses: this store keeps no schedule.
    @_spi(EddaStores) public func updateSchedule(_ schedule: ScheduleRecord) async throws -> Bool {
        throw StoreError(.database, "\(Self.self) keeps no schedule; nothing was written. Use SQLiteStore or PostgresStore.")
    }

    /// Refuses: this store keeps no schedule.
    @_spi(EddaStores) public func deleteSchedule(named name: String) async throws -> Bool {
        throw StoreError(.database, "\(Self.self) keeps no schedule; nothing was deleted. Use SQLiteStore or PostgresStore.")
    }
}

/// A schedule as the store holds it: its definition and where its ticking stands.
public struct ScheduleRecord: Sendable, Hashable {
    /// The schedule's name.
    public var name: String
    /// The workflow it starts.
    public var workflowName: String
    /// The spec's text: a cron expression or `@every <n>s` (``ScheduleSpec/expression``).
    public var expression: String
    /// The time zone's identifier (``ScheduleSpec/timeZone``).
    public var timeZone: String
    /// The input of every instance, as a JSON array of arguments; `nil` when the app that declared
    /// the schedule builds it from each tick (only a worker of such an app starts its ticks).
    public var input: JSONPayload?
    /// What a tick does while the previous instance still runs.
    public var overlap: Schedule.OverlapPolicy
    /// How late a missed tick may still start.
    public var catchUpWindow: Duration
    /// The queue each tick's instance starts on, or `nil` to start it at once.
    public var queue: String?
    /// On ``queue``: the priority of each tick's instance (lower numbers are admitted first).
    public var priority: Int
    /// A paused schedule starts no tick until resumed (triggered and backfilled ticks still start).
    public var paused: Bool
    /// The next tick to start, or `nil` when the spec has no more.
    public var nextTick: Date?
    /// The latest tick started.
    public var lastTick: Date?
    /// The instance started last (for a tick, a trigger or a backfill): what the overlap policy watches.
    public var lastInstanceID: String?
    /// Ticks that came while the previous instance still ran, waiting their turn (buffer policies).
    public var bufferedTicks: [Date]
    /// Ticks asked for by a trigger or a backfill, not started yet.
    public var requestedTicks: [Date]
    /// Grows by one with every write: what ``ScheduleStore/updateSchedule(_:)`` compares.
    public var revision: Int64
    /// When it was last written (by the writer's clock).
    public var updatedAt: Date

    /// A schedule with every field given; a new one has revision 1, no tick started and none waiting.
    public init(
        name: String, workflowName: String, expression: String, timeZone: String, input: JSONPayload?, overlap: Schedule.OverlapPolicy,
        catchUpWindow: Duration, queue: String? = nil, priority: Int = 0, paused: Bool = false, nextTick: Date?, lastTick: Date? = nil,
        lastInstanceID: String? = nil, bufferedTicks: [Date] = [], requestedTicks: [Date] = [], revision: Int64 = 1, updatedAt: Date
    ) {
        self.name = name
        self.workflowName = workflowName
        self.expression = expression
        self.timeZone = timeZone
        self.input = input
        self.overlap = overlap
        self.catchUpWindow = catchUpWindow
        self.queue = queue
        self.priority = priority
        self.paused = paused
        self.nextTick = nextTick
        self.lastTick = lastTick
        self.lastInstanceID = lastInstanceID
        self.bufferedTicks = bufferedTicks
        self.requestedTicks = requestedTicks
        self.revision = revision
        self.updatedAt = updatedAt
    }

    init(
        name: String, workflowName: String, spec: ScheduleSpec, input: JSONPayload?, overlap: Schedule.OverlapPolicy, catchUpWindow: Duration,
        queue: String? = nil, priority: Int = 0, nextTick: Date?, updatedAt: Date
    ) {
        self.init(
            name: name, workflowName: workflowName, expression: spec.expression, timeZone: spec.timeZone.identifier, input: input, overlap: overlap,
            catchUpWindow: catchUpWindow, queue: queue, priority: priority, nextTick: nextTick, updatedAt: updatedAt
        )
    }

    /// The spec, or `nil` if the stored text cannot be read (such a schedule does not tick).
    public var spec: ScheduleSpec? { try? ScheduleSpec(expression: expression, timeZone: timeZone) }

    /// The next `count` ticks from ``nextTick`` on (none while paused).
    public func upcomingTicks(_ count: Int) -> [Date] {
        guard !paused, let spec, var tick = nextTick else { return [] }
        var ticks = [tick]
        while ticks.count < count, let next = spec.nextTick(after: tick) {
            ticks.append(next)
            tick = next
        }
        return ticks
    }

    /// Whether the definition — workflow, spec, input, policy, window, queue and priority — is the same as `other`'s.
    func sameDefinition(as other: ScheduleRecord) -> Bool {
        workflowName == other.workflowName && expression == other.expression && timeZone == other.timeZone && input == other.input
            && overlap == other.overlap && catchUpWindow == other.catchUpWindow && queue == other.queue && priority == other.priority
    }

    /// ``catchUpWindow`` in milliseconds, as the stores keep it.
    @_spi(EddaStores) public var catchUpWindowMilliseconds: Int64 {
        catchUpWindow.milliseconds
    }

    /// Ticks as the stores keep them: a JSON array of milliseconds since 1970.
    @_spi(EddaStores) public static func encodeTicks(_ ticks: [Date]) -> String {
        "[" + ticks.map { String($0.millisecondsSince1970) }.joined(separator: ",") + "]"
    }

    /// Reads ``encodeTicks(_:)``'s text; what is not a number is left out.
    @_spi(EddaStores) public static func decodeTicks(_ text: String?) -> [Date] {
        guard let text else { return [] }
        return text.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")).split(separator: ",").compactMap {
            Int64($0.trimmingCharacters(in: .whitespaces)).map(Date.init(storedMilliseconds:))
        }
    }
}

extension ScheduleRecord {
    /// The columns of a schedule row, in the order the stored-row initializer (`init(storedName:…)`)
    /// takes them. Times are milliseconds since 1970.
    @_spi(EddaStores) public static let storedColumns = [
        "name", "workflow_name", "expression", "time_zone", "input", "overlap", "catch_up_window", "paused", "next_tick", "last_tick",
        "last_instance_id", "buffered_ticks", "requested_ticks", "revision", "updated_at", "queue_name", "priority",
    ]

    /// A schedule from its row's columns (``storedColumns``). An unknown overlap policy reads as
    /// ``Schedule/OverlapPolicy/skip``.
    @_spi(EddaStores) public init(
        storedName name: String, workflowName: String, expression: String, timeZone: String, input: String?, overlap: String,
        catchUpWindow: Int64, paused: Bool, nextTick: Int64?, lastTick: Int64?, lastInstanceID: String?, bufferedTicks: String?,
        requestedTicks: String?, revision: Int64, updatedAt: Int64, queue: String?, priority: Int64
    ) {
        self.init(
            name: name, workflowName: workflowName, expression: expression, timeZone: timeZone, input: input.map(JSONPayload.init(json:)),
            overlap: Schedule.OverlapPolicy(rawValue: overlap) ?? .skip, catchUpWindow: .milliseconds(catchUpWindow), queue: queue,
            priority: Int(clamping: priority), paused: paused,
            nextTick: nextTick.map(Date.init(storedMilliseconds:)), lastTick: lastTick.map(Date.init(storedMilliseconds:)),
            lastInstanceID: lastInstanceID, bufferedTicks: Self.decodeTicks(bufferedTicks), requestedTicks: Self.decodeTicks(requestedTicks),
            revision: revision, updatedAt: Date(storedMilliseconds: updatedAt)
        )
    }
}
