public import Foundation

/// Events and channel messages: how a waiting workflow receives them exactly once.
///
/// A message a workflow consumes is written into its history (a ``HistoryEventKind/messageReceived``
/// record) **in the same transaction** that takes it from the store, so that it is neither lost when
/// a process dies right after delivery nor delivered twice. Two paths lead there:
///
/// - The workflow asks first (``receive(_:lease:now:)``, fenced by its lease): a message that is
///   already there is consumed and recorded at once; otherwise the store keeps a **wait** row
///   (instance, step, channel, deadline) and the run ends, releasing the instance.
/// - The message comes first (``publish(_:recordedAs:now:)``): the publisher's transaction records
///   it into the history of the waiting instances it goes to, deletes their wait rows and makes them
///   ready (or, if one is still leased, marks it so that its release makes it ready at once).
///
/// A conforming store serializes those two paths per channel (SQLite's single writer, a
/// transaction-scoped advisory lock on PostgreSQL), so a message and a wait registered at the same
/// moment always meet.
public protocol Mailbox: Sendable {
    /// Consumes a message for `wait` or registers the wait, in one transaction fenced by `lease`:
    ///
    /// 1. If history already has an outcome for the wait's step (a publisher delivered it), return it.
    /// 2. If a message the wait can take is stored, record it (removing it unless it is a broadcast)
    ///    and return the record.
    /// 3. Otherwise keep the wait row (its first deadline, and broadcast position, win over later
    ///    calls); if its deadline is at or before `now`, record a ``HistoryEventKind/waitTimedOut``
    ///    record instead and return it.
    ///
    /// - Throws: ``ChannelModeError`` when the channel is used in another mode;
    ///   ``StoreError/Code-swift.struct/leaseLost``.
    @_spi(EddaStores) func receive(_ wait: MessageWait, lease: Lease, now: Date) async throws -> ReceiveOutcome

    /// Publishes one message (or event) and delivers it to the instances waiting for it, in one
    /// transaction. With `recordedAs`, the publishing workflow's step record is appended in that
    /// transaction too, fenced by its lease, so that a publish from a workflow happens exactly once.
    ///
    /// - Throws: ``ChannelModeError``; ``StoreError/Code-swift.struct/leaseLost``.
    @_spi(EddaStores) func publish(_ message: OutgoingMessage, recordedAs record: (event: HistoryEvent, lease: Lease)?, now: Date) async throws -> PublishOutcome

    /// Registers `channel` in `mode` (or checks it) and returns the sequence number of its newest
    /// broadcast message (0 if none): where a new broadcast subscriber starts.
    ///
    /// - Throws: ``ChannelModeError``.
    @_spi(EddaStores) func subscribe(to channel: String, mode: ChannelMode, now: Date) async throws -> Int64
}

/// What a workflow waits for: a message on a channel, or an event of a type.
@_spi(EddaStores) public struct MessageWait: Sendable, Hashable {
    /// The waiting instance and the step it waits at.
    public var instanceID: String
    public var stepID: String
    public var position: Int?
    public var name: String
    /// The channel's name, or the event's type.
    public var channel: String
    public var kind: MessageKind
    /// Broadcast only: the wait takes the first message with a sequence number above this. `nil`
    /// when the workflow has not subscribed: the store takes the channel's newest (what
    /// ``Mailbox/subscribe(to:mode:now:)`` returns).
    public var afterSequence: Int64?
    /// When the wait times out; `nil` waits for as long as it takes.
    public var deadline: Date?

    public init(
        instanceID: String, stepID: String, position: Int?, name: String, channel: String, kind: MessageKind,
        afterSequence: Int64?, deadline: Date?
    ) {
        self.instanceID = instanceID
        self.stepID = stepID
        self.position = position
        self.name = name
        self.channel = channel
        self.kind = kind
        self.afterSequence = afterSequence
        self.deadline = deadline
    }
}

/// Result of ``Mailbox/receive(_:lease:now:)``.
@_spi(EddaStores) public enum ReceiveOutcome: Sendable {
    /// The wait's outcome is in history: a ``HistoryEventKind/messageReceived`` or a
    /// ``HistoryEventKind/waitTimedOut`` record.
    case recorded(HistoryEvent)
    /// Nothing yet: the wait row is stored, until `deadline` (`nil`: no timeout).
    case waiting(deadline: Date?)
}

/// A message to publish.
@_spi(EddaStores) public struct OutgoingMessage: Sendable {
    /// The channel's name, or the event's type.
    public var channel: String
    public var kind: MessageKind
    /// The one instance it is for (direct messages; events sent to one instance), or `nil`.
    public var target: String?
    public var envelope: MessageEnvelope
    /// How long an undelivered message is kept. Broadcast messages are kept this long in any case,
    /// for subscribers that are not waiting at the moment.
    public var retention: Duration

    public init(channel: String, kind: MessageKind, target: String?, envelope: MessageEnvelope, retention: Duration) {
        self.channel = channel
        self.kind = kind
        self.target = target
        self.envelope = envelope
        self.retention = retention
    }

    /// Whether the store keeps it when nobody waits for it. An event sent to every waiter is not
    /// kept: it goes to the instances waiting at that moment, or nowhere.
    public var isKept: Bool { kind != .event || target != nil }
}

/// Result of ``Mailbox/publish(_:recordedAs:now:)``.
@_spi(EddaStores) public enum PublishOutcome: Sendable, Equatable {
    /// Published. `sequence` is the stored message's number (`nil` if it was not kept);
    /// `deliveredTo` the waiting instances it was recorded into, in delivery order.
    case published(sequence: Int64?, deliveredTo: [String])
    /// The message was for one instance, and no instance has that ID. Nothing was written.
    case targetNotFound
    /// The message was for one instance, and it has finished. Nothing was written.
    case targetFinished(InstanceStatus)
}

/// How a stored message is matched with waits.
public enum MessageKind: String, Sendable, Hashable, Codable {
    /// A channel message every subscriber receives.
    case broadcast
    /// A channel message exactly one subscriber consumes.
    case competing
    /// A channel message for one instance.
    case direct
    /// A CloudEvent, waited for by type (``WorkflowContext/waitForEvent(type:as:timeout:eventID:)``).
    case event

    init(_ mode: ChannelMode) {
        switch mode {
        case .broadcast: self = .broadcast
        case .competing: self = .competing
        case .direct: self = .direct
        }
    }

    /// Whether a message of this kind may go to one instance only (a direct message, or an event
    /// sent to an instance), so that a store can lock and look it up by that instance.
    public var isTargeted: Bool { self == .direct || self == .event }

    /// The channel mode it belongs to, or `nil` for events, which have none.
    public var channelMode: ChannelMode? {
        switch self {
        case .broadcast: .broadcast
        case .competing: .competing
        case .direct: .direct
        case .event: nil
        }
    }
}

/// A stored message: a CloudEvent's attributes, its data as text, and the publishing instance.
///
/// Stored as JSON in the message table, and inside the ``HistoryEventKind/messageReceived`` record
/// of the instance that consumes it (`{"seq": 12, "message": {…}}`).
public struct MessageEnvelope: Codable, Sendable, Hashable {
    public var id: String
    public var source: String
    public var type: String
    public var subject: String?
    public var timeMilliseconds: Int64
    public var dataContentType: String?
    /// The data as UTF-8 text (JSON, usually), when it is text.
    public var data: String?
    /// The data as base64, when it is not UTF-8 text.
    public var dataBase64: String?
    public var extensions: [String: String]
    /// The instance that published it, when a workflow did.
    public var sender: String?

    public init(_ event: CloudEvent, sender: String?) {
        self.id = event.id
        self.source = event.source
        self.type = event.type
        self.subject = event.subject
        self.timeMilliseconds = event.time.millisecondsSince1970
        self.dataContentType = event.dataContentType
        if let bytes = event.data {
            if let text = String(data: bytes, encoding: .utf8) {
                self.data = text
            } else {
                self.dataBase64 = bytes.base64EncodedString()
            }
        }
        self.extensions = event.extensions
        self.sender = sender
    }

    /// The CloudEvent it carries.
    public var event: CloudEvent {
        var event = CloudEvent(
            id: id, type: type, source: source, subject: subject, time: Date(storedMilliseconds: timeMilliseconds),
            data: data.map { Data($0.utf8) } ?? dataBase64.flatMap { Data(base64Encoded: $0) }, dataContentType: dataContentType
        )
        event.extensions = extensions
        return event
    }

    enum CodingKeys: String, CodingKey {
        case id, source, type, subject, data, extensions, sender
        case timeMilliseconds = "time_ms"
        case dataContentType = "datacontenttype"
        case dataBase64 = "data_base64"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        source = try container.decode(String.self, forKey: .source)
        type = try container.decode(String.self, forKey: .type)
        subject = try container.decodeIfPresent(String.self, forKey: .subject)
        timeMilliseconds = try container.decode(Int64.self, forKey: .timeMilliseconds)
        dataContentType = try container.decodeIfPresent(String.self, forKey: .dataContentType)
        data = try container.decodeIfPresent(String.self, forKey: .data)
        dataBase64 = try container.decodeIfPresent(String.self, forKey: .dataBase64)
        extensions = try container.decodeIfPresent([String: String].self, forKey: .extensions) ?? [:]
        sender = try container.decodeIfPresent(String.self, forKey: .sender)
    }
}

/// The history records a store writes for waits, built here so that every backend writes the same.
extension MessageWait {
    /// The ``HistoryEventKind/messageReceived`` record of this wait taking the message stored as
    /// `envelope` (JSON) under `sequence`.
    public func deliveryRecord(sequence: Int64?, envelope: String) -> HistoryEvent {
        HistoryEvent(
            instanceID: instanceID, stepID: stepID, position: position, name: name, kind: .messageReceived,
            payload: JSONPayload(json: Self.deliveryPayload(channel: channel, sequence: sequence, envelope: envelope))
        )
    }

    /// The payload of a ``HistoryEventKind/messageReceived`` record, for a store that writes the
    /// record in SQL before it knows which wait takes the message.
    public static func deliveryPayload(channel: String, sequence: Int64?, envelope: String) -> String {
        "{\"channel\":\(quoted(channel)),\"message\":\(envelope),\"seq\":\(sequence.map(String.init) ?? "null")}"
    }

    /// The ``HistoryEventKind/waitTimedOut`` record of this wait; `afterSequence` is the broadcast
    /// position it waited from, kept so that the next wait on the channel goes on from there.
    public func timeoutRecord(deadline: Date, afterSequence: Int64?) -> HistoryEvent {
        let after = afterSequence.map(String.init) ?? "null"
        return HistoryEvent(
            instanceID: instanceID, stepID: stepID, position: position, name: name, kind: .waitTimedOut,
            payload: JSONPayload(
                json: "{\"after_seq\":\(after),\"channel\":\(Self.quoted(channel)),\"deadline_ms\":\(deadline.millisecondsSince1970)}"
            )
        )
    }

    private static func quoted(_ text: String) -> String {
        String(decoding: (try? JSONCoding.encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}

/// A ``HistoryEventKind/messageReceived`` record's payload.
struct DeliveredMessage: Decodable {
    var channel: String
    var message: MessageEnvelope
    var seq: Int64?
}

/// A ``HistoryEventKind/waitTimedOut`` record's payload.
struct TimedOutWait: Decodable {
    var channel: String
    var deadlineMilliseconds: Int64
    var afterSequence: Int64?

    enum CodingKeys: String, CodingKey {
        case channel
        case deadlineMilliseconds = "deadline_ms"
        case afterSequence = "after_seq"
    }
}

/// What a child workflow's finish reports to its parent: a message kept for the parent on the
/// child's own event channel, which ``ChildWorkflow/result()`` waits on. Built here so that every
/// backend reports the same.
package struct ChildReport: Codable, Sendable {
    var status: String
    var output: String?
    var error: ErrorRecord?

    /// The event channel a child's report goes to.
    package static func channel(of childID: String) -> String { "edda.child/\(childID)" }

    /// How long a report waits for a parent that does not ask for it.
    package static let retention: Duration = .seconds(366 * 86_400)

    /// The report of `childID` ending with `outcome`, for `parent`.
    package static func message(childID: String, outcome: InstanceOutcome, parent: String) throws -> OutgoingMessage {
        let (status, output, error) = try outcome.storedColumns()
        let report = ChildReport(
            status: status, output: output, error: try error.map { try JSONPayload(json: $0).decode(ErrorRecord.self) }
        )
        let event = CloudEvent(
            id: "edda.child/\(childID)", type: channel(of: childID), source: "edda", data: try JSONCoding.encoder.encode(report),
            dataContentType: "application/json"
        )
        return OutgoingMessage(
            channel: channel(of: childID), kind: .event, target: parent, envelope: MessageEnvelope(event, sender: childID), retention: retention
        )
    }
}
