public import Foundation

/// A CloudEvent a workflow received with ``WorkflowContext/waitForEvent(type:as:timeout:eventID:)``,
/// with its data decoded.
public struct ReceivedEvent<Payload: Sendable>: Sendable {
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var time: Date
    public var dataContentType: String?
    /// The event's data, decoded from JSON.
    public var data: Payload
    /// Extension attributes the sender set.
    public var extensions: [String: String]
}
