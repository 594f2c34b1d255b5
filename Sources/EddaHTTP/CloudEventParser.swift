import Edda
import Foundation
import HTTPTypes

/// Reads a CloudEvent (1.0) from an HTTP request in either content mode of the HTTP binding:
/// structured (`application/cloudevents+json`: the whole event as a JSON document) or binary
/// (attributes in `ce-` headers, the data as the body). Any other shape is a 400 saying why.
enum CloudEventParser {
    private static let contextAttributes: Set<String> = ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"]

    static func parse(headers: HTTPFields, body: Data) throws -> CloudEvent {
        let contentType = headers[.contentType]?.lowercased() ?? ""
        if contentType.hasPrefix("application/cloudevents+json") {
            return try structured(body)
        }
        if contentType.hasPrefix("application/cloudevents") {
            throw APIError.badRequest(
                "Only the JSON event format is accepted in structured mode (application/cloudevents+json).", type: "malformed_event",
                field: "Content-Type"
            )
        }
        return try binary(headers: headers, body: body, contentType: headers[.contentType])
    }

    static func structured(_ body: Data) throws -> CloudEvent {
        guard let document = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw malformed("the body is not a JSON object")
        }
        func string(_ name: String, required: Bool) throws -> String? {
            guard let value = document[name] else {
                if required { throw malformed("the required attribute '\(name)' is missing") }
                return nil
            }
            guard let text = value as? String, !text.isEmpty else { throw malformed("'\(name)' must be a non-empty string") }
            return text
        }
        guard try string("specversion", required: true) == "1.0" else { throw malformed("'specversion' must be \"1.0\"") }
        let dataContentType = try string("datacontenttype", required: false)
        var data: Data?
        if let base64 = document["data_base64"] {
            guard let text = base64 as? String, let bytes = Data(base64Encoded: text) else { throw malformed("'data_base64' is not base64") }
            data = bytes
        } else if let value = document["data"] {
            if let text = value as? String, let type = dataContentType, !isJSON(type) {
                data = Data(text.utf8)
            } else {
                data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])
            }
        }
        var event = CloudEvent(
            id: try string("id", required: true)!, type: try string("type", required: true)!, source: try string("source", required: true)!,
            subject: try string("subject", required: false), time: try time(try string("time", required: false)), data: data,
            dataContentType: dataContentType ?? (data == nil ? nil : "application/json")
        )
        for (name, value) in document where !contextAttributes.contains(name) && name != "data" && name != "data_base64" {
            guard isExtensionName(name) else { throw malformed("'\(name)' is not a valid attribute name (lower-case letters and digits)") }
            event.extensions[name] = value as? String ?? "\(value)"
        }
        return event
    }

    static func binary(headers: HTTPFields, body: Data, contentType: String?) throws -> CloudEvent {
        var attributes: [String: String] = [:]
        for field in headers {
            let name = field.name.canonicalName
            guard name.hasPrefix("ce-") else { continue }
            attributes[String(name.dropFirst(3))] = field.value.removingPercentEncoding ?? field.value
        }
        guard !attributes.isEmpty else {
            throw malformed("no CloudEvent found: send 'ce-specversion', 'ce-id', 'ce-source' and 'ce-type' headers, or a body of type application/cloudevents+json")
        }
        guard attributes["specversion"] == "1.0" else { throw malformed("the 'ce-specversion' header must be 1.0") }
        for required in ["id", "source", "type"] where (attributes[required] ?? "").isEmpty {
            throw malformed("the required 'ce-\(required)' header is missing")
        }
        var event = CloudEvent(
            id: attributes["id"]!, type: attributes["type"]!, source: attributes["source"]!, subject: attributes["subject"],
            time: try time(attributes["time"]), data: body.isEmpty ? nil : body, dataContentType: body.isEmpty ? nil : contentType ?? "application/json"
        )
        for (name, value) in attributes where !contextAttributes.contains(name) {
            guard isExtensionName(name) else { throw malformed("'ce-\(name)' is not a valid attribute name (lower-case letters and digits)") }
            event.extensions[name] = value
        }
        return event
    }

    private static func time(_ text: String?) throws -> Date {
        guard let text else { return Date() }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
        if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
        throw malformed("'time' must be an RFC 3339 timestamp, not '\(text)'")
    }

    private static func isExtensionName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 20 && name.allSatisfy { ($0.isASCII && $0.isLowercase) || $0.isNumber }
    }

    private static func isJSON(_ contentType: String) -> Bool {
        let type = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return type == "application/json" || type.hasSuffix("+json") || type == "text/json"
    }

    private static func malformed(_ reason: String) -> APIError {
        APIError.badRequest("Malformed CloudEvent: \(reason).", type: "malformed_event")
    }
}
