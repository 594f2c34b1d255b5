/// Where a workflow instance is in its life.
///
/// An opaque set of values (more arrive with compensation, cancellation and waiting); compare
/// with the static members.
public struct InstanceStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The text stored in the database and shown by the CLI: `"running"`, `"completed"`, `"failed"`.
    public let rawValue: String

    /// Accepts a stored status; `nil` for a text Edda does not know.
    public init?(rawValue: String) {
        guard Self.all.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    private init(known: String) { self.rawValue = known }

    /// A status as stored, known or not: how a store reports a row with a status this version of
    /// Edda does not know (see ``WorkflowInstance/unreadable``).
    package init(stored: String) { self.rawValue = stored }

    /// Whether this version of Edda knows the status (one of ``all``).
    public var isKnown: Bool { Self.all.contains(self) }

    /// Started and not finished: executing, or waiting to be resumed after a crash or a restart.
    ///
    /// A waiting instance is running too: ``WorkflowInstance/status`` is `running` for it, and the
    /// `running` filter and count of ``InstanceReader`` include it. ``waiting`` is the part of them
    /// parked on a wait.
    public static let running = InstanceStatus(known: "running")
    /// Running and parked on a wait — an event, a channel message, a timer, a child, a retry's
    /// backoff — holding no lease: ``WorkflowInstance/waitingFor`` says which.
    ///
    /// Derived when the store is read, never stored: the engine writes `running` and a wait row or a
    /// time to resume at, as it always did, and a reader tells the two apart. It is what
    /// ``WorkflowInstance/displayStatus`` shows, and what ``InstanceQuery/status`` and
    /// ``InstanceReader/statusCounts(matching:)`` can select and count: a subset of ``running``,
    /// which keeps counting and selecting every running instance.
    public static let waiting = InstanceStatus(known: "waiting")
    /// Started on a ``Queue`` and not admitted yet: it waits for room within the queue's limits.
    /// Stored as such; a claim that admits it makes it ``running``.
    public static let queued = InstanceStatus(known: "queued")
    /// Failed, and running the compensations of its completed activities (Saga rollback).
    /// Resumed like a running instance after a crash.
    public static let compensating = InstanceStatus(known: "compensating")
    /// Returned a result.
    public static let completed = InstanceStatus(known: "completed")
    /// Threw an error, or diverged from its history; its compensations, if any, have run.
    public static let failed = InstanceStatus(known: "failed")
    /// Stopped by ``EddaApp/cancel(_:)`` at a step boundary; its compensations, if any, have run.
    public static let cancelled = InstanceStatus(known: "cancelled")

    /// Every status Edda knows.
    public static let all: [InstanceStatus] = [.queued, .running, .waiting, .compensating, .completed, .failed, .cancelled]

    /// Whether the instance can change no further.
    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }

    public var description: String { rawValue }
}
