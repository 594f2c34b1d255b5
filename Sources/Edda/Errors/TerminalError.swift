/// An activity error that must not be retried: invalid input, a broken business rule, a
/// resource that does not exist.
///
/// Throw it from an activity to stop at once. The workflow receives it as a `TerminalError`
/// with the same message, the first time and on every replay, and may catch it.
///
/// ```swift
/// let validateUser = Activity("validate_user") { (ctx, userID: String) -> User in
///     guard let user = try await users.find(userID) else {
///         throw TerminalError("User \(userID) not found")
///     }
///     return user
/// }
/// ```
public struct TerminalError: EddaError, Equatable {
    public var message: String
    /// The Swift type of the error that was wrapped, when one was given.
    public var causeType: String?
    public var cause: (any Error)? { nil }

    /// Creates a terminal error with a message.
    public init(_ message: String) {
        self.message = message
        self.causeType = nil
    }

    /// Wraps another error so that it is not retried. Only its type name and description are kept,
    /// because that is what history can give back on replay.
    public init(wrapping error: any Error) {
        let record = ErrorRecord(error)
        self.message = record.message
        self.causeType = record.type
    }

    init(record: ErrorRecord) {
        self.message = record.message
        self.causeType = record.type == "TerminalError" ? nil : record.type
    }
}
