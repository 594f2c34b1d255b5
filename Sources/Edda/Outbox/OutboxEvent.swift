public import Foundation

/// Where an outbox event is in its delivery.
public enum OutboxStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Waiting for delivery (first try, or a retry after ``OutboxEvent/nextAttemptAt``).
    case pending
    /// Claimed by a relay that is delivering it now. A relay that dies leaves it here until the
    /// claim times out; then it is pending again.
    case processing
    /// The receiver answered 2xx.
    case published
    /// Every allowed attempt failed (5xx, timeouts, refused connections).
    case failed
    /// The receiver rejected it with a 4xx (other than 408 and 429): retrying would not help.
    case invalid
    /// It was still undelivered when its maximum age passed.
    case expired
}

/// An event in the transactional outbox, as stored.
public struct OutboxEvent: Sendable, Hashable {
    /// The row's number in the outbox: increases with every event enqueued.
    public var sequence: Int64
    /// The CloudEvent to deliver; its ``CloudEvent/id`` identifies the row.
    public var event: CloudEvent
    /// The workflow instance whose step enqueued it.
    public var instanceID: String?
    /// That step's ID.
    public var stepID: String?
    public var status: OutboxStatus
    /// Delivery attempts made so far.
    public var attempts: Int
    /// When the next attempt is due (for ``OutboxStatus/pending``).
    public var nextAttemptAt: Date
    /// What the last failed attempt reported.
    public var lastError: String?
    /// When the step that enqueued it committed.
    public var createdAt: Date
    /// When the receiver accepted it.
    public var publishedAt: Date?

    public init(
        sequence: Int64, event: CloudEvent, instanceID: String?, stepID: String?, status: OutboxStatus, attempts: Int,
        nextAttemptAt: Date, lastError: String?, createdAt: Date, publishedAt: Date?
    ) {
        self.sequence = sequence
        self.event = event
        self.instanceID = instanceID
        self.stepID = stepID
        self.status = status
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.createdAt = createdAt
        self.publishedAt = publishedAt
    }
}

/// What a relay asks for when it claims events to deliver.
public struct OutboxClaim: Sendable, Hashable {
    /// Who claims: written on the rows, and required when reporting their outcome.
    public var relayID: String
    /// How many events at most.
    public var limit: Int
    /// Now, by the relay's clock: pending events due by then are claimed.
    public var now: Date
    /// Events in ``OutboxStatus/processing`` claimed before this are taken back: their relay died.
    public var reclaimClaimedBefore: Date
    /// Undelivered events created before this become ``OutboxStatus/expired``; `nil` never expires.
    public var expireCreatedBefore: Date?

    public init(relayID: String, limit: Int, now: Date, reclaimClaimedBefore: Date, expireCreatedBefore: Date?) {
        self.relayID = relayID
        self.limit = limit
        self.now = now
        self.reclaimClaimedBefore = reclaimClaimedBefore
        self.expireCreatedBefore = expireCreatedBefore
    }
}

/// The outcome of one delivery attempt, as a relay reports it.
public enum OutboxDelivery: Sendable, Hashable {
    /// Accepted (2xx).
    case published(at: Date)
    /// Failed; try again at the given time.
    case retry(at: Date, error: String)
    /// Failed for the last allowed time.
    case failed(error: String)
    /// Rejected as malformed (4xx); never retried.
    case invalid(error: String)
}

/// A store that keeps the transactional outbox: ``WorkflowStore/append(_:with:lease:)`` writes events with a
/// step's record, and a relay claims and delivers them through these operations.
public protocol OutboxStore: Sendable {
    /// In one transaction: expires what is too old, takes back stale claims, then marks up to
    /// `claim.limit` due pending events ``OutboxStatus/processing`` for `claim.relayID` and returns
    /// them, oldest first.
    func claimOutboxEvents(_ claim: OutboxClaim) async throws -> [OutboxEvent]

    /// Records the outcome of delivering the event with this ``OutboxEvent/sequence``, if `relayID`
    /// still holds its claim (a relay whose claim was taken back records nothing). Each attempt
    /// counts toward ``OutboxEvent/attempts``.
    func recordOutboxDelivery(sequence: Int64, relayID: String, _ delivery: OutboxDelivery) async throws

    /// Outbox events, oldest first, optionally only those with one status.
    func outboxEvents(status: OutboxStatus?, limit: Int) async throws -> [OutboxEvent]

    /// Returns when events may have been added (a commit wrote some), or after `timeout`.
    func waitForOutboxEvents(upTo timeout: Duration) async
}
