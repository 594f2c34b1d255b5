import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `EddaClient`: starting, finding, cancelling and awaiting instances without running a worker.
@Suite("Client without a worker", .timeLimit(.minutes(1)))
struct ClientTests {
    static let double = Activity("double") { (ctx, n: Int) -> Int in n * 2 }
    static let doubler = Workflow("client_doubler") { (ctx, n: Int) -> Int in try await double(ctx, n) }
    static let gated = Workflow("client_gated") { (ctx, n: Int) -> Int in
        try await ctx.waitForEvent(type: "client.go", as: Int.self).data + n
    }

    @Test(arguments: Backend.allCases)
    func aClientHandsWorkToAWorkerAndAwaitsItsResult(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let client = EddaClient(store: store, serviceName: "api", configuration: .testing)
            // Started before any worker runs: created ready, for the next claim.
            let handle = try await client.start(Self.doubler, 21, instanceID: "d")
            #expect(try await handle.status() == .running)
            let app = EddaApp(store: store, serviceName: "workers", configuration: .testing)
            try app.register(Self.doubler)
            let result = try await app.run { _ in try await handle.result() }
            #expect(result == 42, "the client's handle hears the worker's outcome")
            #expect(try await client.instance("d")?.status == .completed)
            #expect(try await client.history(of: "d").map(\.stepID) == ["double:1"])
        }
    }

    @Test(arguments: Backend.allCases)
    func aClientStartsByNameFromItsRegistryAndSendsEventsAndCancels(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let registry = WorkflowRegistry()
            try registry.register(Self.gated)
            let client = EddaClient(store: store, serviceName: "api", configuration: .testing, registry: registry)
            #expect(client.registry.inputShapes(ofWorkflowNamed: "client_gated")?.count == 1)
            let unknown = await #expect(throws: EngineError.self) {
                try await client.start(workflowNamed: "nope", input: JSONPayload(json: "[1]"))
            }
            #expect(unknown?.code == .unknownWorkflow)
            let id = try await client.start(workflowNamed: "client_gated", input: JSONPayload(json: "[1]"), instanceID: "g")
            let app = EddaApp(store: store, serviceName: "workers", configuration: .testing)
            try app.register(Self.gated)
            try await app.run { _ in
                let handle = client.handle(for: Self.gated, instanceID: id)
                // Kept for the instance until it waits for it, if it does not yet.
                try await client.sendEvent(try CloudEvent(type: "client.go", source: "/t", json: 9), to: id)
                #expect(try await handle.result() == 10)
                try await client.start(Self.gated, 2, instanceID: "c")
                try await client.cancel("c")
                await #expect(throws: WorkflowCancelledError.self) { try await client.handle(for: Self.gated, instanceID: "c").result() }
            }
        }
    }
}
