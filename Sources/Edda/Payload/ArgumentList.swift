/// The arguments of a workflow or activity call, encoded as one JSON array.
///
/// `Workflow("signup") { (ctx, email: String, name: String) in … }` stores its input as
/// `["ada@example.com","Ada"]`: one element per argument, in order.
package struct ArgumentList<each Argument: Codable & Sendable>: Codable, Sendable {
    package let values: (repeat each Argument)

    package init(_ values: repeat each Argument) {
        self.values = (repeat each values)
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in repeat each values {
            try container.encode(value)
        }
    }

    package init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        // Check the count first: throwing after `values` is set crashes the 6.3 compiler (IRGen,
        // destroying a partially built pack tuple).
        if let count = container.count, count != Self.arity {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "Expected \(Self.arity) arguments, found \(count).")
            )
        }
        self.values = (repeat try container.decode((each Argument).self))
    }

    package static var arity: Int {
        var count = 0
        for _ in repeat (each Argument).self {
            count += 1
        }
        return count
    }

}
