/// An error as history records it: its Swift type name and its message.
///
/// Recorded errors come back on replay, so a workflow that caught an error the first time
/// catches the same one when it is replayed. The JSON keys follow Edda's history format:
/// `{"error_type": "ConnectionError", "message": "Network timeout"}`.
public struct ErrorRecord: Codable, Sendable, Hashable {
    /// The Swift type name of the error, without its module (`"PaymentDeclined"`).
    public var type: String
    /// The error's description.
    public var message: String
    /// For a cancellation by a deadline (``WorkflowCancelledError/deadlineExceeded``): which deadline
    /// passed, and when (JSON key `deadline_exceeded`; absent otherwise).
    public var deadlineExceeded: DeadlineExceeded?

    public init(type: String, message: String, deadlineExceeded: DeadlineExceeded? = nil) {
        self.type = type
        self.message = message
        self.deadlineExceeded = deadlineExceeded
    }

    /// Records any error: ``EddaError``s by their `message`, others by `String(describing:)`.
    public init(_ error: any Error) {
        self.type = String(describing: Swift.type(of: error))
        if let error = error as? any EddaError {
            self.message = error.message
        } else {
            self.message = String(describing: error)
        }
        self.deadlineExceeded = (error as? WorkflowCancelledError)?.deadlineExceeded
    }

    enum CodingKeys: String, CodingKey {
        case type = "error_type"
        case message
        case deadlineExceeded = "deadline_exceeded"
    }
}

extension ErrorRecord: CustomStringConvertible {
    public var description: String { "\(type): \(message)" }
}
