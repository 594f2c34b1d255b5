/// The errors a workflow catches by meaning: ``TerminalError``, ``RetryExhaustedError``,
/// ``NonDeterminismError`` and ``WorkflowFailedError``.
///
/// Every one carries a `message` written for the person reading the log, and the error that
/// caused it, when there is one. `description` (what `print(error)` and a log line show) says what
/// happened, why, and what to do; it leaves out what an activity's own errors said, which may hold
/// input data. `debugDescription` (`String(reflecting:)`, `debugPrint`) has everything, causes included.
public protocol EddaError: Error, CustomStringConvertible, CustomDebugStringConvertible {
    /// What happened and, where it helps, what to do about it. Never contains payloads.
    var message: String { get }
    /// The error underneath, if any.
    var cause: (any Error)? { get }
}

extension EddaError {
    public var description: String { "\(Self.self): \(message)" }

    public var debugDescription: String {
        "\(Self.self): \(message)" + (cause.map { " Cause: \(String(reflecting: $0))" } ?? "")
    }
}
