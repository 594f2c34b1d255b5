@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

@Suite("Determinism and concurrency", .timeLimit(.minutes(1)))
struct DeterminismTests {
    let log = ExecutionLog()

    /// Runs `body` with a fresh store of `backend` holding instance `id` of `workflowName` with the given recorded steps.
    func withHistory(
        on backend: Backend, _ id: String, _ workflowName: String, _ events: [HistoryEvent], _ body: (any Store) async throws -> Void
    ) async throws {
        try await backend.withStore { store in
            try await store.seedInstance(id, workflowName: workflowName, history: events)
            try await body(store)
        }
    }

    @Test(arguments: Backend.allCases)
    func changedCodeFailsTheInstanceBeforeAnyFreshStepRuns(_ backend: Backend) async throws {
        let log = self.log
        let reserve = Activity("reserve_inventory") { (ctx) -> Bool in log.record("reserve"); return true }
        let charge = Activity("charge_payment") { (ctx) -> Bool in log.record("charge"); return true }
        let ship = Activity("ship_order") { (ctx) -> Bool in log.record("ship"); return true }
        // Version 2 of the workflow inserted a charge before the recorded reservation was used.
        let order = Workflow("order") { (ctx) -> Bool in
            _ = try await charge(ctx)
            _ = try await reserve(ctx)
            return try await ship(ctx)
        }
        let reserved = try recorded("o1", "reserve_inventory:1", position: 1, name: "reserve_inventory", result: true)
        try await withHistory(on: backend, "o1", "order", [reserved]) { store in
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(order)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: order, instanceID: "o1").result() }
            }
            #expect(failure.error.type == "NonDeterminismError")
            #expect(failure.error.message.contains("position 1"))
            #expect(failure.error.message.contains("'reserve_inventory'") && failure.error.message.contains("'charge_payment'"))
            #expect(log.all.isEmpty, "no fresh step may run once the code diverged")
            let instance = try #require(try await store.instance("o1"))
            #expect(instance.status == .failed)
            #expect(try await store.history(of: "o1").count == 1, "history is never rewritten")
        }
    }

    @Test(arguments: Backend.allCases)
    func removedStepFailsTheInstanceAtTheEnd(_ backend: Backend) async throws {
        let a = Activity("a") { (ctx) -> Int in 1 }
        let shorter = Workflow("shorter") { (ctx) -> Int in try await a(ctx) }
        try await withHistory(
            on: backend,
            "s1", "shorter",
            [try recorded("s1", "a:1", position: 1, name: "a", result: 1), try recorded("s1", "b:1", position: 2, name: "b", result: 2)]
        ) { store in
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(shorter)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: shorter, instanceID: "s1").result() }
            }
            #expect(failure.error.type == "NonDeterminismError")
            #expect(failure.error.message.contains("'b'"))
        }
    }

    @Test(arguments: Backend.allCases)
    func catchingTheErrorDoesNotLetTheWorkflowContinue(_ backend: Backend) async throws {
        let a = Activity("a") { (ctx) -> Int in 1 }
        let z = Activity("z") { (ctx) -> Int in 26 }
        let sneaky = Workflow("sneaky") { (ctx) -> Int in
            do { return try await z(ctx) } catch { return -1 }
        }
        try await withHistory(on: backend, "n1", "sneaky", [try recorded("n1", "a:1", position: 1, name: "a", result: 1)]) { store in
            _ = a
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(sneaky)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: sneaky, instanceID: "n1").result() }
            }
            #expect(failure.error.type == "NonDeterminismError")
        }
    }

    @Test(arguments: Backend.allCases)
    func asyncLetWithExplicitIDsKeepsEachResultAcrossReplay(_ backend: Backend) async throws {
        let log = self.log
        let fetchUser = Activity("fetch_user") { (ctx) -> String in log.record("user"); return "ada" }
        let fetchOrders = Activity("fetch_orders") { (ctx) -> Int in log.record("orders"); return 3 }
        let dashboard = Workflow("dashboard") { (ctx) -> String in
            async let user = fetchUser(ctx, activityID: "user")
            async let orders = fetchOrders(ctx, activityID: "orders")
            return "\(try await user):\(try await orders)"
        }
        // Only fetch_orders was recorded before the crash, from a child task (no position).
        let orders = try recorded("d1", "orders", position: nil, name: "fetch_orders", result: 7)
        try await withHistory(on: backend, "d1", "dashboard", [orders]) { store in
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(dashboard)
            let result = try await app.run { app in try await app.handle(for: dashboard, instanceID: "d1").result() }
            #expect(result == "ada:7")
            #expect(log.all == ["user"])
            #expect(Set(try await store.history(of: "d1").map(\.stepID)) == ["orders", "user"])
        }
    }

    /// Two concurrent calls of one activity with default IDs would be `charge:1`/`charge:2` in arrival
    /// order; a replay in which they arrive the other way round would hand each the other's result.
    /// Such a call is refused, naming the step and the fix, before any body runs.
    @Test(arguments: Backend.allCases)
    func concurrentCallsWithDefaultIDsAreRefusedNotSwapped(_ backend: Backend) async throws {
        let log = self.log
        let charge = Activity("charge") { (ctx, amount: Int) -> Int in log.record("charge \(amount)"); return amount }
        let split = Workflow("split") { (ctx) -> Int in
            async let first = charge(ctx, 10)
            async let second = charge(ctx, 20)
            return try await first - second
        }
        let failure = try await backend.withTestApp { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(split, instanceID: "s1").result() }
        }
        #expect(failure.error.type == "EngineError")
        #expect(failure.error.message.contains("charge:"))
        #expect(failure.error.message.contains("activityID:"))
        #expect(log.all.isEmpty)
    }

    /// The forced reordering: history recorded `charge:a` = 10 and `charge:b` = 20 from concurrent
    /// branches; on replay the branches ask in the opposite order, and each still gets its own result.
    @Test(arguments: Backend.allCases)
    func concurrentCallsWithExplicitIDsKeepTheirResultsWhateverTheOrder(_ backend: Backend) async throws {
        let log = self.log
        let charge = Activity("charge") { (ctx, amount: Int) -> Int in log.record("charge \(amount)"); return amount }
        let gate = Gate()
        let split = Workflow("split") { (ctx) -> Int in
            async let first: Int = {
                await gate.wait()   // the first branch asks second this time
                return try await charge(ctx, 10, activityID: "charge:a")
            }()
            async let second = charge(ctx, 20, activityID: "charge:b")
            let b = try await second
            gate.open()
            return try await first * 100 + b
        }
        try await withHistory(
            on: backend,
            "s2", "split",
            [
                try recorded("s2", "charge:a", position: nil, name: "charge", result: 10),
                try recorded("s2", "charge:b", position: nil, name: "charge", result: 20),
            ]
        ) { store in
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(split)
            let result = try await app.run { app in try await app.handle(for: split, instanceID: "s2").result() }
            #expect(result == 10 * 100 + 20)
            #expect(log.all.isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func preparedStepsInATaskGroupKeepTheirIDsAcrossReplay(_ backend: Backend) async throws {
        let log = self.log
        let charge = Activity("charge_item") { (ctx, item: String) -> String in
            log.record(item)
            try await Task.sleep(for: .milliseconds(item == "b" ? 5 : 1))
            return "paid-\(item)"
        }
        let checkout = Workflow("checkout") { (ctx, items: [String]) -> [String] in
            let calls = try items.map { try charge.prepare(ctx, $0) }
            return try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for (index, call) in calls.enumerated() {
                    group.addTask { (index, try await call()) }
                }
                var results = Array(repeating: "", count: calls.count)
                for try await (index, value) in group { results[index] = value }
                return results
            }
        }
        // First run, fresh.
        let firstHistory = try await backend.withTestApp { app in
            let handle = try await app.start(checkout, ["a", "b", "c", "d"], instanceID: "c1")
            #expect(try await handle.result() == ["paid-a", "paid-b", "paid-c", "paid-d"])
            return try await app.history(of: "c1")
        }
        #expect(Set(firstHistory.map(\.stepID)) == ["charge_item:1", "charge_item:2", "charge_item:3", "charge_item:4"])
        let positions = Dictionary(uniqueKeysWithValues: firstHistory.map { ($0.stepID, $0.position) })
        #expect(positions["charge_item:2"] == 2)

        // A crash left items 1 and 3 recorded; 2 and 4 were in flight.
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("c2", workflowName: "checkout", input: try JSONPayload.encode([["a", "b", "c", "d"]]), owner: "old")
            try await store.append(recorded("c2", "charge_item:3", position: 3, name: "charge_item", result: "paid-c"), lease: lease)
            try await store.append(recorded("c2", "charge_item:1", position: 1, name: "charge_item", result: "paid-a"), lease: lease)
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(checkout)
            let before = log.all.count
            let result = try await app.run { app in try await app.handle(for: checkout, instanceID: "c2").result() }
            #expect(result == ["paid-a", "paid-b", "paid-c", "paid-d"])
            #expect(Array(log.all[before...]).sorted() == ["b", "d"])
        }
    }
}
