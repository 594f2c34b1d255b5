public import Foundation

/// What a parked instance waits for: an event, a channel message, a durable timer, a child
/// workflow, or the next attempt of a failed step.
///
/// Derived at read time from what the store already keeps for the engine — the instance's
/// `ready_at` (the time a run that ended waiting is resumed at), its wait row (kept while
/// ``WorkflowContext/waitForEvent(type:as:timeout:eventID:)``, a channel receive or
/// ``ChildWorkflow/result()`` waits) and otherwise its latest history record (a
/// ``HistoryEventKind/timerScheduled`` or ``HistoryEventKind/attemptFailed`` record) — so that
/// nothing more is written on the engine's path. ``InstanceReader`` fills
/// ``WorkflowInstance/waitingFor`` for every instance that is running (or compensating), holds no
/// lease and has a time to be resumed at; a running one is then shown as ``InstanceStatus/waiting``.
/// An instance sleeping in memory on a short timer (within
/// ``EddaApp/Configuration-swift.struct/maxInMemoryWait``) holds its lease: it reads as running.
///
/// ```swift
/// if let wait = try await app.instance("order-1")?.waitingFor, wait.kind == .event {
///     print("waits for \(wait.awaited ?? "?") until \(wait.deadline.map { "\($0)" } ?? "it comes")")
/// }
/// ```
public struct InstanceWait: Sendable, Hashable {
    /// The kind of a wait. An opaque set of values; compare with the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// `"event"`, `"channel"`, `"timer"`, `"child"` or `"retry"`: the text the API and the CLI show.
        public let rawValue: String

        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A CloudEvent of a type (``WorkflowContext/waitForEvent(type:as:timeout:eventID:)``);
        /// ``InstanceWait/awaited`` is the type.
        public static let event = Kind("event")
        /// A message on a channel (``WorkflowContext/receive(_:timeout:receiveID:)``);
        /// ``InstanceWait/awaited`` is the channel's name.
        public static let channel = Kind("channel")
        /// A durable timer (``WorkflowContext/sleep(for:timerID:)``); ``InstanceWait/deadline`` is when it fires.
        public static let timer = Kind("timer")
        /// A child workflow's outcome (``ChildWorkflow/result()``); ``InstanceWait/awaited`` is the child's instance ID.
        public static let child = Kind("child")
        /// The next attempt of a step that failed and is retried after a backoff;
        /// ``InstanceWait/deadline`` is when it starts, ``InstanceWait/attempt`` the attempt that failed.
        public static let retry = Kind("retry")

        /// Every kind, in the order the viewer lists them.
        public static let all: [Kind] = [.event, .channel, .timer, .child, .retry]

        /// The kind named `text` (one of ``all``'s raw values), or `nil`.
        public init?(rawValue text: String) {
            guard let known = Self.all.first(where: { $0.rawValue == text }) else { return nil }
            self = known
        }

        public var description: String { rawValue }
    }

    /// What it waits for.
    public var kind: Kind
    /// The event type (``Kind/event``), the channel's name (``Kind/channel``) or the child's
    /// instance ID (``Kind/child``); `nil` for a timer or a retry.
    public var awaited: String?
    /// The waiting step's ID (`edda.receive:3`, `edda.sleep:1`, or the retried step's), when known.
    public var stepID: String?
    /// When the wait ends by itself: the timer fires, the next attempt starts, the receive times
    /// out. `nil` when it waits for as long as it takes.
    public var deadline: Date?
    /// When the wait began, when known.
    public var since: Date?
    /// The timeout the workflow gave a receive (event, channel or child): ``deadline`` minus
    /// ``since``. `nil` for timers and retries, and for a receive without a timeout.
    public var timeout: Duration?
    /// For ``Kind/retry``: the attempt that failed (the next one is `attempt + 1`).
    public var attempt: Int?

    /// A wait, as ``InstanceReader`` derives it (tests and other backends build one too).
    public init(
        kind: Kind, awaited: String? = nil, stepID: String? = nil, deadline: Date? = nil, since: Date? = nil, timeout: Duration? = nil,
        attempt: Int? = nil
    ) {
        self.kind = kind
        self.awaited = awaited
        self.stepID = stepID
        self.deadline = deadline
        self.since = since
        self.timeout = timeout
        self.attempt = attempt
    }
}

// MARK: - Deriving (shared by the backends)

/// A wait row as a store reads it: what ``InstanceWait/derived(readyAt:waits:latest:)`` needs.
package struct StoredWait: Sendable {
    package var instanceID: String
    package var stepID: String
    package var channel: String
    package var kind: String
    package var deadline: Int64?
    package var createdAt: Int64

    package init(instanceID: String, stepID: String, channel: String, kind: String, deadline: Int64?, createdAt: Int64) {
        self.instanceID = instanceID
        self.stepID = stepID
        self.channel = channel
        self.kind = kind
        self.deadline = deadline
        self.createdAt = createdAt
    }
}

extension InstanceWait {
    /// Whether an instance is parked: running or compensating, leased to no worker, with a time to
    /// be resumed at. A run that ends waiting always sets one (a timer's time, a retry's, a wait's
    /// deadline, or the distant future for a wait without one); a delivery, a cancellation or a
    /// claim clears it. The backends' SQL says the same.
    package static func isParked(_ instance: WorkflowInstance) -> Bool {
        (instance.status == .running || instance.status == .compensating) && instance.leaseOwner == nil && instance.readyAt != nil
    }

    /// What a parked instance waits for, from its wait rows (the earliest wins when concurrent
    /// branches wait at once) or else its `ready_at` and its latest history record.
    package static func derived(readyAt: Date?, waits: [StoredWait], latest: HistoryEvent?) -> InstanceWait {
        if let row = waits.min(by: { ($0.createdAt, $0.stepID) < ($1.createdAt, $1.stepID) }) {
            let since = Date(storedMilliseconds: row.createdAt)
            let deadline = row.deadline.map(Date.init(storedMilliseconds:))
            let timeout = row.deadline.map { Duration.milliseconds(max($0 - row.createdAt, 0)) }
            let childPrefix = ChildReport.channel(of: "")
            if row.kind == MessageKind.event.rawValue, row.channel.hasPrefix(childPrefix) {
                return InstanceWait(
                    kind: .child, awaited: String(row.channel.dropFirst(childPrefix.count)), stepID: row.stepID, deadline: deadline, since: since,
                    timeout: timeout
                )
            }
            return InstanceWait(
                kind: row.kind == MessageKind.event.rawValue ? .event : .channel, awaited: row.channel, stepID: row.stepID, deadline: deadline,
                since: since, timeout: timeout
            )
        }
        // A wait without a deadline releases the instance until the distant future: no deadline.
        let deadline = readyAt.flatMap { $0 < Self.noDeadline ? $0 : nil }
        if let latest, latest.kind == .attemptFailed {
            let attempt = (try? latest.payload?.decode(AttemptRecord.self))?.attempt
            return InstanceWait(kind: .retry, stepID: latest.stepID, deadline: deadline, since: latest.recordedAt, attempt: attempt)
        }
        let timer = latest.flatMap { $0.kind == .timerScheduled ? $0 : nil }
        return InstanceWait(kind: .timer, stepID: timer?.stepID, deadline: deadline, since: timer?.recordedAt)
    }

    /// Times from here on stand for "no deadline" (the year 3000; waits without a timeout are
    /// released until `Date.distantFuture`).
    static let noDeadline = Date(timeIntervalSince1970: 32_503_680_000)
}
