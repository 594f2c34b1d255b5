import Edda
import EddaTesting
import Foundation
import Testing

@Suite("Input shapes: probing Codable types for the start form")
struct InputShapeTests {
    enum Priority: String, Codable, Sendable, CaseIterable { case low, high }

    struct Address: Codable, Sendable {
        var street: String
        var zip: String?
    }

    struct Line: Codable, Sendable {
        var sku: String
        var quantity: Int
    }

    struct Order: Codable, Sendable {
        var orderID: String
        var amount: Double
        var express: Bool
        var priority: Priority
        var shipTo: Address
        var billTo: Address?
        var lines: [Line]
        var tags: [String]?
        var attributes: [String: Int]
        var due: Date
        var reference: UUID
    }

    @Test func aNestedStructIsDescribedFieldByField() {
        let shape = InputShape.of(Order.self)
        let address = InputShape.object([InputField("street", .string), InputField("zip", .optional(.string))])
        #expect(
            shape == .object([
                InputField("orderID", .string),
                InputField("amount", .number),
                InputField("express", .boolean),
                InputField("priority", .oneOf([JSONPayload(json: "\"low\""), JSONPayload(json: "\"high\"")])),
                InputField("shipTo", address),
                InputField("billTo", .optional(address)),
                InputField("lines", .list(.object([InputField("sku", .string), InputField("quantity", .integer)]))),
                InputField("tags", .optional(.list(.string))),
                InputField("attributes", .dictionary(.integer)),
                InputField("due", .date),
                InputField("reference", .string),
            ])
        )
    }

    @Test func primitivesAndOptionalsAtTheTop() {
        #expect(InputShape.of(String.self) == .string)
        #expect(InputShape.of(Int64.self) == .integer)
        #expect(InputShape.of(Int?.self) == .optional(.integer))
        #expect(InputShape.of([Bool].self) == .list(.boolean))
    }

    enum Unprobeable: String, Codable, Sendable { case only }
    struct Wrapper: Codable, Sendable { var value: Unprobeable }

    enum Described: String, Codable, Sendable, InputShapeDescribing {
        case only
        static var inputShape: InputShape { .oneOf([JSONPayload(json: "\"only\"")]) }
    }
    struct DescribedWrapper: Codable, Sendable { var value: Described; var after: Int }

    @Test func aTypeThatRejectsPlaceholdersFallsBackToJSONUnlessItDescribesItself() {
        #expect(InputShape.of(Wrapper.self) == .json)
        #expect(
            InputShape.of(DescribedWrapper.self)
                == .object([InputField("value", .oneOf([JSONPayload(json: "\"only\"")])), InputField("after", .integer)])
        )
    }

    struct Percent: Codable, Sendable, InputShapeDescribing {
        var value: Int
        init(from decoder: any Decoder) throws {
            value = try decoder.singleValueContainer().decode(Int.self)
            guard (1...100).contains(value) else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "1 to 100")) }
        }
        init(_ value: Int) { self.value = value }
        static var inputShape: InputShape { .integer }
        static var inputShapeSample: Percent? { Percent(50) }
    }
    struct Discount: Codable, Sendable { var percent: Percent; var code: String }

    @Test func aDescribedTypeCanGiveASampleAndIntKeyedDictionariesAreDictionaries() {
        #expect(InputShape.of(Discount.self) == .object([InputField("percent", .integer), InputField("code", .string)]))
        #expect(InputShape.of([Int: String].self) == .dictionary(.string))
        #expect(InputShape.of([String: [Bool]].self) == .dictionary(.list(.boolean)))
    }

    final class Tree: Codable, @unchecked Sendable {
        var name = ""
        var children: [Tree] = []
    }

    @Test func aRecursiveTypeEndsAsJSONInsteadOfLoopingForever() {
        #expect(InputShape.of(Tree.self) == .json)
    }

    @Test func anAppDescribesEachArgumentOfARegisteredWorkflow() async throws {
        let ship = Workflow("ship") { (_: WorkflowContext, order: Order, note: String?) in order.orderID + (note ?? "") }
        try await withTestApp { app in
            try app.register(ship)
            let shapes = try #require(app.inputShapes(ofWorkflowNamed: "ship"))
            #expect(shapes.count == 2)
            #expect(shapes.first == InputShape.of(Order.self))
            #expect(shapes.last == .optional(.string))
            #expect(app.inputShapes(ofWorkflowNamed: "nope") == nil)
        }
    }
}
