@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

/// The seed's Pydantic example, in Swift.
struct OrderInput: Codable, Sendable, Validatable {
    var orderID: String
    var customerEmail: String
    var amount: Double

    func validate() throws {
        guard orderID.wholeMatch(of: /ORD-\d+/) != nil else {
            throw ValidationError(field: "orderID", "must match ^ORD-\\d+$")
        }
        guard amount > 0 else {
            throw ValidationError(field: "amount", "must be greater than 0")
        }
    }
}

struct OrderResult: Codable, Sendable, Equatable {
    var orderID: String
    var status: String
    var total: Double
}

let processOrder = Workflow("process_order") { (ctx, input: OrderInput) -> OrderResult in
    OrderResult(orderID: input.orderID, status: "completed", total: input.amount * 1.1)
}

@Suite("Inputs, instance IDs and bad data", .timeLimit(.minutes(1)))
struct InputAndRecoveryTests {
    @Test(arguments: [
        OrderInput(orderID: "ORDER-1", customerEmail: "a@b.c", amount: 10),
        OrderInput(orderID: "ORD-2", customerEmail: "a@b.c", amount: 0),
    ])
    func invalidInputIsRejectedAndWritesNothing(input: OrderInput) async throws {
        try await withTestApp { app in
            let error = try await #require(throws: EngineError.self) { try await app.start(processOrder, input) }
            #expect(error.code == .invalidInput)
            #expect(error.cause is ValidationError)
            #expect(error.message.contains("process_order") && error.message.contains("No instance was created"))
            #expect(try await app.instances().isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func validInputRuns(_ backend: Backend) async throws {
        let result = try await backend.withTestApp { app in
            try await app.start(processOrder, OrderInput(orderID: "ORD-42", customerEmail: "a@b.c", amount: 100)).result()
        }
        #expect(result.orderID == "ORD-42")
        #expect(abs(result.total - 110) < 0.0001)
    }

    @Test(arguments: Backend.allCases)
    func workflowValidateClosureRuns(_ backend: Backend) async throws {
        let greet = Workflow("greet", validate: { (name: String) in
            if name.isEmpty { throw ValidationError(field: "name", "must not be empty") }
        }) { (ctx, name: String) -> String in "hi \(name)" }
        try await backend.withTestApp { app in
            let error = try await #require(throws: EngineError.self) { try await app.start(greet, "") }
            #expect(error.code == .invalidInput)
            #expect(try await app.start(greet, "ada").result() == "hi ada")
        }
    }

    @Test(arguments: Backend.allCases)
    func startingTwiceWithTheSameIDCreatesOneInstance(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let step = Activity("step") { (ctx, n: Int) -> Int in log.record("step"); return n * 2 }
        let double = Workflow("double") { (ctx, n: Int) -> Int in try await step(ctx, n) }
        let other = Workflow("other") { (ctx, n: Int) -> Int in n }
        try await backend.withTestApp { app in
            let first = try await app.start(double, 21, instanceID: "order-1")
            #expect(try await first.result() == 42)
            let second = try await app.start(double, 21, instanceID: "order-1")
            #expect(second.instanceID == "order-1")
            #expect(try await second.result() == 42)
            #expect(log.count("step") == 1)

            let differentInput = try await #require(throws: EngineError.self) { try await app.start(double, 22, instanceID: "order-1") }
            #expect(differentInput.code == .instanceAlreadyExists)
            let differentWorkflow = try await #require(throws: EngineError.self) { try await app.start(other, 21, instanceID: "order-1") }
            #expect(differentWorkflow.code == .instanceAlreadyExists)
            #expect(try await app.instances().count == 1)
        }
    }

    @Test func invalidInstanceIDIsRejected() async throws {
        try await withTestApp { app in
            let error = try await #require(throws: EngineError.self) { try await app.start(processOrder, OrderInput(orderID: "ORD-1", customerEmail: "", amount: 1), instanceID: "") }
            #expect(error.code == .invalidInput)
        }
    }

    @Test(arguments: Backend.allCases)
    func unknownWorkflowAtResumeKeepsTheInstance(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await store.seedInstance("ghost-1", workflowName: "retired_workflow", serviceName: "test")
            try await store.seedInstance("ghost-2", workflowName: "retired_workflow", serviceName: "test")
            // Another service's instance of a workflow this app does not know: not this app's to judge.
            try await store.seedInstance("theirs-1", workflowName: "their_workflow", serviceName: "other")
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
            let retired = Workflow("retired_workflow") { (ctx) -> Int in 1 }
            let answered = try await app.run { app in
                try await waitUntil { app.unresumableWorkflows["retired_workflow"] != nil }
                // result() waits, as for any instance running elsewhere (it used to throw at once).
                let answered = Mutex(false)
                let waiting = Task {
                    _ = try? await app.handle(for: retired, instanceID: "ghost-1").result()
                    answered.withLock { $0 = true }
                }
                try await Task.sleep(for: .milliseconds(100))
                defer { waiting.cancel() }
                return answered.withLock { $0 }
            }
            #expect(!answered, "result() of an instance nobody here runs did not wait")
            #expect(app.unresumableWorkflows == ["retired_workflow": 2])
            let instance = try #require(try await store.instance("ghost-1"))
            #expect(instance.status == .running)
            #expect(try await store.instance("theirs-1")?.status == .running)
        }
    }

    @Test(arguments: Backend.allCases)
    func corruptPayloadInHistoryNamesInstanceAndStep(_ backend: Backend) async throws {
        let fetch = Activity("fetch") { (ctx) -> User in User(userID: "u", email: "e") }
        let reader = Workflow("reader") { (ctx) -> String in try await fetch(ctx).userID }
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("r1", workflowName: "reader", input: JSONPayload(json: "[]"), owner: "old")
            try await store.append(
                HistoryEvent(instanceID: "r1", stepID: "fetch:1", position: 1, name: "fetch", kind: .activityCompleted, payload: JSONPayload(json: "{\"garbage\":")),
                lease: lease
            )
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(reader)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: reader, instanceID: "r1").result() }
            }
            #expect(failure.error.type == "EngineError")
            #expect(failure.error.message.contains("fetch:1") && failure.error.message.contains("r1"))
            #expect(try await store.history(of: "r1").first?.payload?.json == "{\"garbage\":", "history is left as it is")
        }
    }

    @Test(arguments: Backend.allCases)
    func corruptStoredInputFailsWithAClearError(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await store.seedInstance("p1", workflowName: "process_order", input: JSONPayload(json: "[42]"))
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(processOrder)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: processOrder, instanceID: "p1").result() }
            }
            #expect(failure.error.message.contains("p1") && failure.error.message.contains("process_order"))
        }
    }

    @Test(arguments: Backend.allCases)
    func unknownInstanceIsNotFound(_ backend: Backend) async throws {
        try await backend.withTestApp { app in
            let error = try await #require(throws: EngineError.self) { try await app.handle(for: processOrder, instanceID: "nope").result() }
            #expect(error.code == .instanceNotFound)
        }
    }
}
