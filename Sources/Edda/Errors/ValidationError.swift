/// Throw from ``Validatable/validate()`` (or a workflow's `validate` closure) to reject an input.
///
/// ```swift
/// struct OrderInput: Codable, Sendable, Validatable {
///     var orderID: String
///     var amount: Double
///     func validate() throws {
///         guard orderID.wholeMatch(of: /ORD-\d+/) != nil else {
///             throw ValidationError(field: "orderID", "must match ^ORD-\\d+$")
///         }
///         guard amount > 0 else { throw ValidationError(field: "amount", "must be greater than 0") }
///     }
/// }
/// ```
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field at fault, if the rule is about one field.
    public var field: String?
    /// What is wrong, phrased as the rule: "must be greater than 0".
    public var reason: String

    public init(field: String? = nil, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String {
        field.map { "\($0) \(reason)" } ?? reason
    }
}

/// A type that checks its own values before a workflow instance is created from it.
///
/// Every argument of ``EddaApp/start(_:_:instanceID:timeout:runTimeout:)`` that conforms is validated; an input
/// that fails creates no instance and writes nothing.
public protocol Validatable {
    /// Throws a ``ValidationError`` (or any error) when the value is not acceptable.
    func validate() throws
}
