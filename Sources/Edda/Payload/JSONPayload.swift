public import Foundation

/// A JSON document as Edda stores it: workflow inputs and outputs, activity results.
///
/// Payloads stay JSON so that history can be read in the viewer, from the CLI and from other
/// languages. Decode one into your own `Decodable` type with ``decode(_:)``.
///
/// ```swift
/// if let output = instance.output {
///     let result = try output.decode(OrderResult.self)
/// }
/// ```
public struct JSONPayload: Sendable, Hashable {
    /// The UTF-8 JSON bytes.
    public var data: Data

    /// Wraps bytes that already hold one JSON document.
    public init(data: Data) {
        self.data = data
    }

    /// Wraps a JSON text.
    public init(json: String) {
        self.data = Data(json.utf8)
    }

    /// The JSON text.
    public var json: String {
        String(decoding: data, as: UTF8.self)
    }

    /// Decodes the payload.
    ///
    /// - Throws: `DecodingError` when the JSON does not match `type`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONCoding.decoder.decode(T.self, from: data)
    }

    /// Encodes a value. Keys are sorted, so equal values give equal payloads.
    public static func encode<T: Encodable>(_ value: T) throws -> JSONPayload {
        JSONPayload(data: try JSONCoding.encoder.encode(value))
    }
}

extension JSONPayload: CustomStringConvertible {
    public var description: String { json }
}

/// Shared coders. `JSONEncoder` and `JSONDecoder` are safe to use from many tasks once configured,
/// and building one per step costs more than the encoding itself.
///
/// Dates keep Foundation's default encoding (seconds as a `Double`): it is lossless, so a `Date`
/// in a recorded result equals, on replay, the one the first run saw. ISO-8601 would drop the
/// fractions of a second and let replay see a different value.
package enum JSONCoding {
    package static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    package static let decoder: JSONDecoder = {
        JSONDecoder()
    }()
}
