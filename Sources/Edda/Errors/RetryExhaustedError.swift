/// An activity failed on every attempt its ``RetryPolicy`` allowed.
///
/// The workflow receives it in place of the activity's result, on the first run and on every
/// replay, and may catch it to run fallback logic:
///
/// ```swift
/// do {
///     payment = try await chargePayment(ctx, orderID)
/// } catch let error as RetryExhaustedError {
///     try await notifyPaymentTeam(ctx, orderID)
///     throw error
/// }
/// ```
public struct RetryExhaustedError: EddaError {
    /// The activity's name.
    public var activityName: String
    /// The step ID of the failed call.
    public var stepID: String
    /// How many attempts ran.
    public var attempts: Int
    /// Time from the first attempt's start to the last attempt's end, including backoff.
    public var totalDuration: Duration
    /// Every attempt's error, oldest first.
    public var errors: [ErrorRecord]
    /// The last attempt's error itself on the run where it happened; on replay, a
    /// ``RecordedError`` with the same type name and message.
    public var cause: (any Error)?

    /// The last attempt's error.
    public var lastError: ErrorRecord? { errors.last }

    public var message: String {
        "Activity '\(activityName)' (\(stepID)) failed after \(attempts) attempt\(attempts == 1 ? "" : "s")"
            + (lastError.map { "; last error: \($0)" } ?? "")
    }

    /// The failure without what the attempts' errors said (it may hold input data): their type only.
    public var description: String {
        "RetryExhaustedError: Activity '\(activityName)' (\(stepID)) failed after \(attempts) attempt\(attempts == 1 ? "" : "s")"
            + (lastError.map { "; last error: \($0.type) (its message is in `errors`)." } ?? ".")
    }
}

/// An error read back from history: the type name and message of an error thrown in an earlier run.
public struct RecordedError: EddaError, Equatable {
    public var record: ErrorRecord
    public var message: String { record.message }
    public var cause: (any Error)? { nil }
    /// The recorded error's type only: its message may hold input data (see `debugDescription`).
    public var description: String { "RecordedError: \(record.type) (its message is in `record`)." }
    public var debugDescription: String { "RecordedError: \(record.description)" }

    public init(_ record: ErrorRecord) {
        self.record = record
    }
}
