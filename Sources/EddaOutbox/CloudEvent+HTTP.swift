import AsyncHTTPClient
import Edda
import Foundation
import NIOCore
import NIOHTTP1

extension CloudEvent {
    /// This event as an HTTP POST in CloudEvents' HTTP protocol binding, version 1.0.
    func httpRequest(to endpoint: String, mode: OutboxRelay.Configuration.Mode) throws -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        switch mode {
        case .binary:
            request.headers.add(name: "ce-specversion", value: "1.0")
            request.headers.add(name: "ce-id", value: Self.percentEncoded(id))
            request.headers.add(name: "ce-source", value: Self.percentEncoded(source))
            request.headers.add(name: "ce-type", value: Self.percentEncoded(type))
            request.headers.add(name: "ce-time", value: Self.timestamp(time))
            if let subject { request.headers.add(name: "ce-subject", value: Self.percentEncoded(subject)) }
            for (name, value) in extensions.sorted(by: { $0.key < $1.key }) where !Self.reserved.contains(name) {
                request.headers.add(name: "ce-\(name)", value: Self.percentEncoded(value))
            }
            if let dataContentType { request.headers.add(name: "content-type", value: dataContentType) }
            if let data { request.body = .bytes(ByteBuffer(bytes: data)) }
        case .structured:
            request.headers.add(name: "content-type", value: "application/cloudevents+json; charset=utf-8")
            request.body = .bytes(ByteBuffer(bytes: try structuredDocument()))
        }
        return request
    }

    /// Attribute names an extension may not take (the context attributes and the data's keys).
    static let reserved: Set<String> = [
        "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "dataschema", "data", "data_base64",
    ]

    /// The JSON event format: JSON data inline under `data`, anything else base64 under `data_base64`.
    func structuredDocument() throws -> Data {
        var document: [String: Any] = [
            "specversion": "1.0", "id": id, "source": source, "type": type, "time": Self.timestamp(time),
        ]
        if let subject { document["subject"] = subject }
        if let dataContentType { document["datacontenttype"] = dataContentType }
        for (name, value) in extensions where !Self.reserved.contains(name) { document[name] = value }
        if let data {
            if isJSON, let value = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) {
                document["data"] = value
            } else {
                document["data_base64"] = data.base64EncodedString()
            }
        }
        return try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    private var isJSON: Bool {
        guard let type = dataContentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() else {
            return false
        }
        return type == "application/json" || type.hasSuffix("+json") || type == "text/json"
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Binary mode header values: printable ASCII except space, `"` and `%` as is, the rest as UTF-8 `%XX`.
    static func percentEncoded(_ value: String) -> String {
        var encoded = ""
        for byte in value.utf8 {
            if (0x21...0x7E).contains(byte), byte != UInt8(ascii: "\""), byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return encoded
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
