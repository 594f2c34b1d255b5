/// The errors a workflow catches by meaning: ``TerminalError``, ``RetryExhaustedError``,
/// ``NonDeterminismError`` and ``WorkflowFailedError``.
///
/// Every one carries a `message` written for the person reading the log, and the error that
/// caused it, when there is one.
public protocol EddaError: Error, CustomStringConvertible {
    /// What happened and, where it helps, what to do about it. Never contains payloads.
    var message: String { get }
    /// The error underneath, if any.
    var cause: (any Error)? { get }
}

extension EddaError {
    public var description: String { "\(Self.self): \(message)" }
}
