public import Foundation

/// The kind of a history record.
public struct HistoryEventKind: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init?(rawValue: String) {
        guard Self.all.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    private init(known: String) { self.rawValue = known }

    /// An activity returned; the payload is its result.
    public static let activityCompleted = HistoryEventKind(known: "ActivityCompleted")
    /// An activity failed for good (terminal error, or retries exhausted); the error is recorded.
    public static let activityFailed = HistoryEventKind(known: "ActivityFailed")
    /// One attempt of a step failed and another is scheduled; the payload is an ``AttemptRecord``.
    /// Recorded so that a crash between attempts neither resets the count nor the time budget.
    public static let attemptFailed = HistoryEventKind(known: "AttemptFailed")
    /// A compensation ran to completion while the workflow was being rolled back.
    public static let compensationCompleted = HistoryEventKind(known: "CompensationCompleted")
    /// A compensation failed for good; the remaining compensations still ran.
    public static let compensationFailed = HistoryEventKind(known: "CompensationFailed")
    /// A value the workflow asked for that must not change on replay — ``WorkflowContext/now()``,
    /// ``WorkflowContext/uuid()``, ``WorkflowContext/random(in:)-(Range<Int>)``; the payload is the value.
    public static let valueRecorded = HistoryEventKind(known: "ValueRecorded")
    /// A durable timer was set (``WorkflowContext/sleep(until:timerID:)``); the payload holds its
    /// deadline, fixed by the first run.
    public static let timerScheduled = HistoryEventKind(known: "TimerScheduled")

    /// A wait took an event or a channel message; the payload is the message
    /// (`{"channel": …, "message": {…}, "seq": …}`), written in the transaction that consumed it.
    public static let messageReceived = HistoryEventKind(known: "MessageReceived")
    /// A wait for an event or a channel message reached its deadline first; the payload holds it.
    public static let waitTimedOut = HistoryEventKind(known: "WaitTimedOut")
    /// The workflow published a channel message or sent one; the payload says where and to whom it was delivered.
    public static let messagePublished = HistoryEventKind(known: "MessagePublished")

    /// The workflow started a child workflow (``WorkflowContext/startChild(_:_:childID:on:priority:partitionKey:)``); the
    /// payload names the child instance.
    public static let childStarted = HistoryEventKind(known: "ChildStarted")

    /// Someone ran the failed instance again from its failed step (``EddaClient/retry(_:requestedBy:)``),
    /// written in the retry's transaction. The step ID is the step run again (empty when the workflow
    /// failed outside a step); the payload is a ``RetryRecord``: who asked, and the failure the retry
    /// moved to the archive. Replay skips it: it records an operator's act, not a step.
    public static let retried = HistoryEventKind(known: "Retried")

    /// A run reached ``WorkflowContext/patched(_:)`` with no recorded step at or after that point, so
    /// it took the patched branch; the step ID is `edda.patch:<patch ID>`, the payload
    /// `{"patch": "<patch ID>"}`. Replay reads it as "this instance runs the patched code" and skips
    /// it when matching positions (see <doc:ChangingWorkflowCode>).
    public static let patchMarker = HistoryEventKind(known: "PatchMarker")

    public static let all: [HistoryEventKind] = [
        .activityCompleted, .activityFailed, .attemptFailed, .compensationCompleted, .compensationFailed, .valueRecorded,
        .timerScheduled, .messageReceived, .waitTimedOut, .messagePublished, .childStarted, .retried, .patchMarker,
    ]

    /// Whether this kind is a step's final outcome (unique per instance and step ID).
    public var isOutcome: Bool { self != .attemptFailed && self != .retried }

    /// The kinds that record something going wrong: a failed attempt, activity or compensation, a
    /// wait past its deadline. The viewer's and the CLI's "failed only" filter.
    public static let failures: Set<HistoryEventKind> = [.activityFailed, .attemptFailed, .compensationFailed, .waitTimedOut]

    public var description: String { rawValue }
}

/// A page of an instance's history for ``InstanceReader/history(of:matching:)``: the records after
/// a sequence number (or just before one), optionally of some kinds only, in append order.
public struct HistoryQuery: Sendable {
    /// Only records with a greater ``HistoryEvent/sequence``: the last one of the previous page.
    public var after: Int64
    /// Only records with a smaller ``HistoryEvent/sequence``, and of those the last ``limit``:
    /// the page just before a record (the first one of the next page), still returned in append
    /// order. `Int64.max` gives the latest records. `nil` (the default) reads from ``after`` on.
    public var before: Int64?
    /// At most this many.
    public var limit: Int
    /// Only records of these kinds (``HistoryEventKind/failures`` for "failed only"); `nil` for all.
    public var kinds: Set<HistoryEventKind>?

    /// A page of records in append order: the first `limit` after `after`, or, with `before`, the
    /// last `limit` before it (and after `after`).
    ///
    /// - Parameters:
    ///   - after: Only records with a greater sequence number.
    ///   - before: Only records with a smaller sequence number, the last `limit` of them;
    ///     `Int64.max` for the latest records, `nil` to read forward from `after`.
    ///   - limit: At most this many.
    ///   - kinds: Only records of these kinds; `nil` for all.
    public init(after: Int64 = 0, before: Int64? = nil, limit: Int = 200, kinds: Set<HistoryEventKind>? = nil) {
        self.after = after
        self.before = before
        self.limit = limit
        self.kinds = kinds
    }
}

/// One record of a workflow instance's history: the outcome of one step, or one failed attempt.
///
/// The engine makes a record with ``init(instanceID:stepID:position:name:kind:payload:error:retry:)``
/// and a store appends it; the store then gives it its ``sequence`` and ``recordedAt`` — what
/// ``InstanceReader/history(of:)`` returns.
public struct HistoryEvent: Sendable {
    /// Append order; grows with every record the store writes. 0 until the record is appended.
    public var sequence: Int64
    public var instanceID: String
    /// The step ID (`"send_email:1"`, or the `activityID:` the code gave).
    public var stepID: String
    /// Where the workflow's top-level code requested the step (1-based), or `nil` for a step
    /// requested from a concurrent child task. Replay checks order with it.
    public var position: Int?
    /// The activity's name.
    public var name: String
    public var kind: HistoryEventKind
    /// The result, for ``HistoryEventKind/activityCompleted``.
    public var payload: JSONPayload?
    /// The final error, for ``HistoryEventKind/activityFailed``.
    public var error: ErrorRecord?
    /// Attempts and errors of the step, as the seed's `retry_metadata`; `nil` on an outcome means
    /// the first attempt succeeded.
    public var retry: RetryMetadata?
    /// When the store appended the record, by its clock; `Date.distantPast` until then.
    public var recordedAt: Date

    /// A record as stored.
    public init(
        sequence: Int64, instanceID: String, stepID: String, position: Int?, name: String, kind: HistoryEventKind,
        payload: JSONPayload?, error: ErrorRecord?, retry: RetryMetadata?, recordedAt: Date
    ) {
        self.sequence = sequence
        self.instanceID = instanceID
        self.stepID = stepID
        self.position = position
        self.name = name
        self.kind = kind
        self.payload = payload
        self.error = error
        self.retry = retry
        self.recordedAt = recordedAt
    }

    /// A record to append: the store gives it its sequence number and time.
    public init(
        instanceID: String, stepID: String, position: Int?, name: String, kind: HistoryEventKind,
        payload: JSONPayload? = nil, error: ErrorRecord? = nil, retry: RetryMetadata? = nil
    ) {
        self.init(
            sequence: 0, instanceID: instanceID, stepID: stepID, position: position, name: name, kind: kind,
            payload: payload, error: error, retry: retry, recordedAt: .distantPast
        )
    }
}

/// The schedule of a failed attempt, stored as the payload of an ``HistoryEventKind/attemptFailed`` record.
///
/// Times are milliseconds since 1970 (wall clock), so they mean the same to the next process.
public struct AttemptRecord: Codable, Sendable, Hashable {
    /// The attempt that failed (1-based).
    public var attempt: Int
    /// When the step's first attempt started.
    public var firstAttemptAtMilliseconds: Int64
    /// When the next attempt may start.
    public var nextAttemptAtMilliseconds: Int64

    public init(attempt: Int, firstAttemptAtMilliseconds: Int64, nextAttemptAtMilliseconds: Int64) {
        self.attempt = attempt
        self.firstAttemptAtMilliseconds = firstAttemptAtMilliseconds
        self.nextAttemptAtMilliseconds = nextAttemptAtMilliseconds
    }

    enum CodingKeys: String, CodingKey {
        case attempt
        case firstAttemptAtMilliseconds = "first_attempt_at_ms"
        case nextAttemptAtMilliseconds = "next_attempt_at_ms"
    }
}

/// How many attempts a step took, as stored with its history record.
///
/// Encoded with the seed's keys:
/// `{"total_attempts": 3, "total_duration_ms": 7200, "exhausted": false, "last_error": {…}}`.
public struct RetryMetadata: Codable, Sendable, Hashable {
    public var totalAttempts: Int
    public var totalDurationMilliseconds: Int64
    /// Whether the step failed because its attempts ran out.
    public var exhausted: Bool
    /// The most recent attempt's error, if any attempt failed.
    public var lastError: ErrorRecord?
    /// Every failed attempt's error, oldest first.
    public var errors: [ErrorRecord]

    public init(totalAttempts: Int, totalDurationMilliseconds: Int64, exhausted: Bool, lastError: ErrorRecord?, errors: [ErrorRecord]) {
        self.totalAttempts = totalAttempts
        self.totalDurationMilliseconds = totalDurationMilliseconds
        self.exhausted = exhausted
        self.lastError = lastError
        self.errors = errors
    }

    enum CodingKeys: String, CodingKey {
        case totalAttempts = "total_attempts"
        case totalDurationMilliseconds = "total_duration_ms"
        case exhausted
        case lastError = "last_error"
        case errors
    }
}
