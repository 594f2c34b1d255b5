import Foundation

/// The shape of a workflow argument as JSON: what the viewer's start form and the API's schema are
/// generated from.
///
/// Swift has no runtime reflection of `Codable` types, so Edda finds the shape by *probing*: it runs
/// the type's own `init(from:)` against a decoder that answers every request with a placeholder and
/// writes down what was asked for — the keys of a keyed container, the value types, which keys were
/// read with `decodeIfPresent` (optional), which containers were unkeyed (lists) or iterated by key
/// (dictionaries). Synthesized and hand-written conformances are described alike, nested types and
/// `Optional`s included. Recognised directly: `String`, the integer and floating-point types,
/// `Bool`, `Date`, `UUID`, `URL`, `Decimal`, `Data`, and `CaseIterable` enums (their cases become
/// ``oneOf(_:)``).
///
/// A type whose `init(from:)` rejects placeholders (a `String`-backed enum that is not
/// `CaseIterable`, a decoder that checks a value's range) cannot be probed; its argument falls back
/// to ``json``, edited as JSON text. A decoder that *traps* on a placeholder (`URL(string: s)!`)
/// stops the process, as it would on bad input: throw from `init(from:)` instead. Conform such a
/// type to ``InputShapeDescribing`` to say its shape (and, if a placeholder of that shape does not
/// decode, give a sample value):
///
/// ```swift
/// enum Tier: String, Codable, Sendable, InputShapeDescribing {
///     case free, pro
///     static var inputShape: InputShape { .oneOf([JSONPayload(json: "\"free\""), JSONPayload(json: "\"pro\"")]) }
/// }
/// ```
public indirect enum InputShape: Sendable, Hashable {
    case string
    case integer
    case number
    case boolean
    /// A `Date`, stored as Foundation encodes it by default: seconds since 1 January 2001 (UTC).
    case date
    /// One of these JSON values (an enum's cases).
    case oneOf([JSONPayload])
    /// The value may be absent (`null`).
    case optional(InputShape)
    case list(InputShape)
    /// An object with arbitrary string keys and values of one shape.
    case dictionary(InputShape)
    /// An object with these fields, in the order the type reads them.
    case object([InputField])
    /// Any JSON: the shape could not be found (see the type's documentation).
    case json

    /// The shape of `type`, as its `Decodable` implementation reads it.
    public static func of<T: Decodable>(_ type: T.Type) -> InputShape {
        let node = ShapeNode()
        do {
            _ = try ShapeProbe.value(of: T.self, into: node, depth: 0)
            return node.shape
        } catch {
            return .json
        }
    }

    /// Whether the value may be absent.
    public var isOptional: Bool {
        if case .optional = self { return true }
        return false
    }

    /// The shape without its ``optional(_:)`` wrapper.
    public var unwrapped: InputShape {
        if case .optional(let wrapped) = self { return wrapped.unwrapped }
        return self
    }

    /// A JSON value of this shape (zero, empty, the first case): what a probe feeds a described type.
    var placeholder: Any {
        switch self {
        case .string: ""
        case .integer, .number, .date: 0
        case .boolean: false
        case .oneOf(let cases): cases.first.flatMap { try? JSONSerialization.jsonObject(with: $0.data, options: .fragmentsAllowed) } ?? NSNull()
        case .optional: NSNull()
        case .list: [Any]()
        case .dictionary, .json: [String: Any]()
        case .object(let fields): Dictionary(fields.map { ($0.name, $0.shape.placeholder) }, uniquingKeysWith: { first, _ in first })
        }
    }
}

/// A field of an ``InputShape/object(_:)``.
public struct InputField: Sendable, Hashable {
    /// The JSON key.
    public var name: String
    public var shape: InputShape

    public init(_ name: String, _ shape: InputShape) {
        self.name = name
        self.shape = shape
    }
}

/// A type that states its own ``InputShape``, for the start form and the API's schema, instead of
/// being probed (see ``InputShape``).
public protocol InputShapeDescribing {
    static var inputShape: InputShape { get }
    /// A value the probe hands the type's container in its place. By default, `nil`: the probe
    /// decodes a placeholder of ``inputShape`` (zero, empty, the first case) instead, which a type
    /// that checks ranges may refuse.
    static var inputShapeSample: Self? { get }
}

extension InputShapeDescribing {
    public static var inputShapeSample: Self? { nil }
}

// MARK: - The probe

/// What the probe learnt about one value.
private final class ShapeNode {
    enum Kind { case unknown, string, integer, number, boolean, keyed, unkeyed }
    var kind = Kind.unknown
    var fixed: InputShape?
    var optional = false
    var iteratedKeys = false
    var fields: [(name: String, node: ShapeNode)] = []
    var element: ShapeNode?

    func field(_ name: String) -> ShapeNode {
        if let existing = fields.first(where: { $0.name == name }) { return existing.node }
        let node = ShapeNode()
        fields.append((name, node))
        return node
    }

    func elementNode() -> ShapeNode {
        if let element { return element }
        let node = ShapeNode()
        element = node
        return node
    }

    var shape: InputShape {
        let base: InputShape
        if let fixed {
            base = fixed
        } else {
            switch kind {
            case .unknown: base = .json
            case .string: base = .string
            case .integer: base = .integer
            case .number: base = .number
            case .boolean: base = .boolean
            case .keyed: base = iteratedKeys ? .dictionary(fields.first?.node.shape ?? .json) : .object(fields.map { InputField($0.name, $0.node.shape) })
            case .unkeyed: base = .list(element?.shape ?? .json)
            }
        }
        return optional && !base.isOptional ? .optional(base) : base
    }
}

private struct ProbeError: Error {}

/// The probing decoder: answers with placeholders, records the questions into a ``ShapeNode``.
private struct ShapeProbe: Decoder {
    let node: ShapeNode
    let depth: Int
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// A placeholder value of `T`, recording its shape into `node`.
    static func value<T: Decodable>(of type: T.Type, into node: ShapeNode, depth: Int) throws -> T {
        guard depth < 24 else { throw ProbeError() }   // a recursive type
        if let described = T.self as? any InputShapeDescribing.Type {
            node.fixed = described.inputShape
            if let sample = described.inputShapeSample as? T { return sample }
            let placeholder = try JSONSerialization.data(withJSONObject: [described.inputShape.placeholder])
            return try JSONCoding.decoder.decode([T].self, from: placeholder)[0]
        }
        switch T.self {
        case is Date.Type: node.fixed = .date; return Date(timeIntervalSinceReferenceDate: 0) as! T
        case is UUID.Type: node.fixed = .string; return UUID() as! T
        case is URL.Type: node.fixed = .string; return URL(string: "https://example.com")! as! T
        case is Decimal.Type: node.fixed = .number; return Decimal(0) as! T
        case is Data.Type: node.fixed = .string; return Data() as! T
        default: break
        }
        if let enumeration = T.self as? any (CaseIterable & Encodable).Type, let (cases, first) = Self.cases(of: enumeration), let first = first as? T {
            node.fixed = .oneOf(cases)
            return first
        }
        return try T(from: ShapeProbe(node: node, depth: depth + 1))
    }

    private static func cases<E: CaseIterable & Encodable>(of type: E.Type) -> ([JSONPayload], Any)? {
        let all = Array(E.allCases)
        guard let first = all.first, let encoded = try? all.map({ try JSONPayload.encode($0) }) else { return nil }
        return (encoded, first)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        node.kind = .keyed
        return KeyedDecodingContainer(KeyedProbe<Key>(node: node, depth: depth))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        node.kind = .unkeyed
        return UnkeyedProbe(node: node, depth: depth)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueProbe(node: node, depth: depth)
    }
}

/// Placeholders for the primitive types, recording their kind.
private func primitive<T>(_ type: T.Type, into node: ShapeNode) throws -> T {
    switch type {
    case is String.Type: node.kind = .string; return "" as! T
    case is Bool.Type: node.kind = .boolean; return false as! T
    case is Double.Type: node.kind = .number; return 0.0 as! T
    case is Float.Type: node.kind = .number; return Float(0) as! T
    case is Int.Type: node.kind = .integer; return 0 as! T
    case is Int8.Type: node.kind = .integer; return Int8(0) as! T
    case is Int16.Type: node.kind = .integer; return Int16(0) as! T
    case is Int32.Type: node.kind = .integer; return Int32(0) as! T
    case is Int64.Type: node.kind = .integer; return Int64(0) as! T
    case is UInt.Type: node.kind = .integer; return UInt(0) as! T
    case is UInt8.Type: node.kind = .integer; return UInt8(0) as! T
    case is UInt16.Type: node.kind = .integer; return UInt16(0) as! T
    case is UInt32.Type: node.kind = .integer; return UInt32(0) as! T
    case is UInt64.Type: node.kind = .integer; return UInt64(0) as! T
    default: throw ProbeError()
    }
}

private struct SingleValueProbe: SingleValueDecodingContainer {
    let node: ShapeNode
    let depth: Int
    var codingPath: [any CodingKey] { [] }

    func decodeNil() -> Bool {
        node.optional = true
        return false
    }

    func decode(_ type: Bool.Type) throws -> Bool { try primitive(type, into: node) }
    func decode(_ type: String.Type) throws -> String { try primitive(type, into: node) }
    func decode(_ type: Double.Type) throws -> Double { try primitive(type, into: node) }
    func decode(_ type: Float.Type) throws -> Float { try primitive(type, into: node) }
    func decode(_ type: Int.Type) throws -> Int { try primitive(type, into: node) }
    func decode(_ type: Int8.Type) throws -> Int8 { try primitive(type, into: node) }
    func decode(_ type: Int16.Type) throws -> Int16 { try primitive(type, into: node) }
    func decode(_ type: Int32.Type) throws -> Int32 { try primitive(type, into: node) }
    func decode(_ type: Int64.Type) throws -> Int64 { try primitive(type, into: node) }
    func decode(_ type: UInt.Type) throws -> UInt { try primitive(type, into: node) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try primitive(type, into: node) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try primitive(type, into: node) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try primitive(type, into: node) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try primitive(type, into: node) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try ShapeProbe.value(of: type, into: node, depth: depth) }
}

private struct KeyedProbe<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: ShapeNode
    let depth: Int
    var codingPath: [any CodingKey] { [] }

    /// Asked by dictionaries: one sample key stands for all (`"0"` suits `String` and `Int` keys).
    /// A type whose keys cannot take it (an enum with associated values) gets none.
    var allKeys: [Key] {
        guard let sample = Key(stringValue: "0") else { return [] }
        node.iteratedKeys = true
        return [sample]
    }

    func contains(_ key: Key) -> Bool { true }

    func decodeNil(forKey key: Key) -> Bool {
        node.field(key.stringValue).optional = true
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try primitive(type, into: node.field(key.stringValue)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try primitive(type, into: node.field(key.stringValue)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try ShapeProbe.value(of: type, into: node.field(key.stringValue), depth: depth)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ShapeProbe(node: node.field(key.stringValue), depth: depth + 1).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ShapeProbe(node: node.field(key.stringValue), depth: depth + 1).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { ShapeProbe(node: node, depth: depth + 1) }
    func superDecoder(forKey key: Key) throws -> any Decoder { ShapeProbe(node: node.field(key.stringValue), depth: depth + 1) }
}

/// Looks like a list of one element, whose shape stands for every element's.
private struct UnkeyedProbe: UnkeyedDecodingContainer {
    let node: ShapeNode
    let depth: Int
    var codingPath: [any CodingKey] { [] }
    var count: Int? { 1 }
    var currentIndex = 0
    var isAtEnd: Bool { currentIndex >= 1 }

    init(node: ShapeNode, depth: Int) {
        self.node = node
        self.depth = depth
    }

    mutating func next<T>(_ body: (ShapeNode) throws -> T) rethrows -> T {
        defer { currentIndex += 1 }
        return try body(node.elementNode())
    }

    mutating func decodeNil() -> Bool {
        node.elementNode().optional = true
        return false
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: String.Type) throws -> String { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try next { try primitive(type, into: $0) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try next { try primitive(type, into: $0) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let depth = depth
        return try next { try ShapeProbe.value(of: type, into: $0, depth: depth) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let depth = depth
        return try next { try ShapeProbe(node: $0, depth: depth + 1).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let depth = depth
        return try next { try ShapeProbe(node: $0, depth: depth + 1).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        let depth = depth
        return next { ShapeProbe(node: $0, depth: depth + 1) }
    }
}
