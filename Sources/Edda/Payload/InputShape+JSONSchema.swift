import Foundation

extension InputShape {
    /// The shape as a JSON Schema (draft 2020-12) document, as `JSONSerialization` objects: what the
    /// JSON API lists for each argument, and what an MCP tool takes as its input schema.
    public var jsonSchema: [String: Any] {
        switch self {
        case .string: ["type": "string"]
        case .integer: ["type": "integer"]
        case .number: ["type": "number"]
        case .boolean: ["type": "boolean"]
        case .date: ["type": "number", "description": "a date: seconds since 2001-01-01T00:00:00Z"]
        case .oneOf(let cases):
            ["enum": cases.map { (try? JSONSerialization.jsonObject(with: $0.data, options: [.fragmentsAllowed])) ?? $0.json }]
        case .optional(let wrapped): ["anyOf": [wrapped.jsonSchema, ["type": "null"]]]
        case .list(let element): ["type": "array", "items": element.jsonSchema]
        case .dictionary(let value): ["type": "object", "additionalProperties": value.jsonSchema]
        case .object(let fields):
            [
                "type": "object",
                "properties": Dictionary(fields.map { ($0.name, $0.shape.jsonSchema) }, uniquingKeysWith: { first, _ in first }),
                "required": fields.filter { !$0.shape.isOptional }.map(\.name),
            ]
        case .json: [:]
        }
    }
}
