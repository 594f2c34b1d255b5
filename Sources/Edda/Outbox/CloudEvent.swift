public import Foundation

/// An event in the [CloudEvents 1.0](https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md)
/// shape: what an activity puts in the transactional outbox with ``ActivityContext/enqueue(_:)``.
///
/// ```swift
/// try ctx.enqueue(CloudEvent(type: "order.placed", source: "/orders", json: OrderPlaced(orderID: id)))
/// ```
public struct CloudEvent: Sendable, Hashable, Codable {
    /// Unique per event; receivers use it to drop duplicates, since delivery is at least once.
    public var id: String
    /// Who emitted the event, as a URI reference: `"/orders"`, `"https://shop.example/payments"`.
    public var source: String
    /// What happened, reverse-DNS style: `"com.example.order.placed"`.
    public var type: String
    /// What the event is about within the source, such as an order ID.
    public var subject: String?
    /// When it happened.
    public var time: Date
    /// The media type of ``data``: `"application/json"`, `"text/plain"`, …
    public var dataContentType: String?
    /// The payload, as bytes of ``dataContentType``.
    public var data: Data?
    /// Extension attributes (CloudEvents 1.0 "extension context attributes"): lower-case
    /// alphanumeric names, string values. Carried to the workflow that receives the event; the
    /// outbox does not store them.
    public var extensions: [String: String] = [:]

    /// An event with a payload in any media type.
    public init(
        id: String = UUID().uuidString, type: String, source: String, subject: String? = nil,
        time: Date = Date(), data: Data? = nil, dataContentType: String? = nil
    ) {
        self.id = id
        self.type = type
        self.source = source
        self.subject = subject
        self.time = time
        self.data = data
        self.dataContentType = dataContentType ?? (data == nil ? nil : "application/octet-stream")
    }

    /// An event whose payload is `json` encoded as JSON (content type `application/json`).
    ///
    /// - Throws: `EncodingError` if the value cannot be encoded.
    public init(
        id: String = UUID().uuidString, type: String, source: String, subject: String? = nil,
        time: Date = Date(), json: some Encodable
    ) throws {
        self.init(
            id: id, type: type, source: source, subject: subject, time: time,
            data: try JSONCoding.encoder.encode(json), dataContentType: "application/json"
        )
    }
}

extension CloudEvent {
    enum CodingKeys: String, CodingKey {
        case id, source, type, subject, time, dataContentType, data, extensions
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id), type: try container.decode(String.self, forKey: .type),
            source: try container.decode(String.self, forKey: .source), subject: try container.decodeIfPresent(String.self, forKey: .subject),
            time: try container.decode(Date.self, forKey: .time), data: try container.decodeIfPresent(Data.self, forKey: .data),
            dataContentType: try container.decodeIfPresent(String.self, forKey: .dataContentType)
        )
        extensions = try container.decodeIfPresent([String: String].self, forKey: .extensions) ?? [:]
    }
}
