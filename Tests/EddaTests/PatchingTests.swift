@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `ctx.patched` and `ctx.deprecatePatch` on real histories: one recorded by the code before the
/// patch, replayed by the patched code, on every backend.
@Suite("Patching workflow code", .timeLimit(.minutes(1)))
struct PatchingTests {
    let log = ExecutionLog()
    let price: Activity<String, Int>
    let oldTax: Activity<Int, Int>
    let newTax: Activity<Int, Int>
    let ship: Activity<Int, String>

    init() {
        let log = self.log
        price = Activity("price") { (ctx, order: String) -> Int in log.record("price"); return 100 }
        oldTax = Activity("old_tax") { (ctx, total: Int) -> Int in log.record("old_tax"); return total / 10 }
        newTax = Activity("new_tax") { (ctx, total: Int) -> Int in log.record("new_tax"); return total / 5 }
        ship = Activity("ship") { (ctx, total: Int) -> String in log.record("ship"); return "shipped \(total)" }
    }

    /// Version 1: price, tax by the old rule, wait for approval, ship.
    func version1() -> Workflow<String, String> {
        let (price, oldTax, ship) = (price, oldTax, ship)
        return Workflow("checkout") { (ctx, order: String) -> String in
            let total = try await price(ctx, order)
            let tax = try await oldTax(ctx, total)
            _ = try await ctx.waitForEvent(type: "approved", as: String.self, eventID: "approval")
            return try await ship(ctx, total + tax)
        }
    }

    /// Version 2: the tax rule is patched.
    func version2() -> Workflow<String, String> {
        let (price, oldTax, newTax, ship) = (price, oldTax, newTax, ship)
        return Workflow("checkout") { (ctx, order: String) -> String in
            let total = try await price(ctx, order)
            let tax: Int
            if try await ctx.patched("new-tax-rule") {
                tax = try await newTax(ctx, total)
            } else {
                tax = try await oldTax(ctx, total)
            }
            _ = try await ctx.waitForEvent(type: "approved", as: String.self, eventID: "approval")
            return try await ship(ctx, total + tax)
        }
    }

    /// Version 3: every old-path instance has finished; the old branch is gone. Version 4: the
    /// `deprecatePatch` call is gone too.
    func version3(deprecating: Bool = true) -> Workflow<String, String> {
        let (price, newTax, ship) = (price, newTax, ship)
        return Workflow("checkout") { (ctx, order: String) -> String in
            let total = try await price(ctx, order)
            if deprecating { try ctx.deprecatePatch("new-tax-rule") }
            let tax = try await newTax(ctx, total)
            _ = try await ctx.waitForEvent(type: "approved", as: String.self, eventID: "approval")
            return try await ship(ctx, total + tax)
        }
    }

    func approve(_ app: EddaApp, _ id: String) async throws {
        _ = try await app.sendEvent(try CloudEvent(type: "approved", source: "/test", json: "yes"), to: id)
    }

    func isWaiting(_ store: any Store, _ id: String) async throws -> Bool {
        guard let instance = try await store.instance(id) else { return false }
        return instance.leaseOwner == nil && instance.readyAt != nil && instance.status == .running
    }

    /// Starts `id` with `workflow` and stops the app once it waits for its approval.
    func startAndLeaveWaiting(_ workflow: Workflow<String, String>, _ id: String, on store: any Store) async throws {
        try await withTestApp(store: store) { app in
            _ = try await app.start(workflow, id, instanceID: id)
            try await waitUntil { try await self.isWaiting(store, id) }
        }
    }

    /// Resumes the waiting `id` under `workflow`, approves it and returns its result.
    func approveAndFinish(_ workflow: Workflow<String, String>, _ id: String, on store: any Store) async throws -> String {
        try await withTestApp(store: store) { app in
            try app.register(workflow)
            try await waitUntil { try await self.isWaiting(store, id) }
            try await self.approve(app, id)
            return try await app.handle(for: workflow, instanceID: id).result()
        }
    }

    @Test(arguments: Backend.allCases)
    func anInstanceRecordedBeforeThePatchKeepsTheOldPathAndANewOneTakesTheNew(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await startAndLeaveWaiting(version1(), "old", on: store)
            #expect(log.all == ["price", "old_tax"])

            #expect(try await approveAndFinish(version2(), "old", on: store) == "shipped 110", "the old tax rule: history has old_tax there")
            #expect(log.all == ["price", "old_tax", "ship"], "replayed steps did not run again")
            let oldHistory = try await store.history(of: "old")
            #expect(!oldHistory.contains { $0.kind == .patchMarker }, "the old path records no marker")

            try await startAndLeaveWaiting(version2(), "new", on: store)
            #expect(try await approveAndFinish(version2(), "new", on: store) == "shipped 120", "the new tax rule")
            let newHistory = try await store.history(of: "new")
            #expect(newHistory.map(\.stepID) == ["price:1", "edda.patch:new-tax-rule", "new_tax:1", "approval", "ship:1"])
            let marker = try #require(newHistory.first { $0.kind == .patchMarker })
            #expect(marker.position == 2 && marker.name == "new-tax-rule")
            #expect(try marker.payload?.decode([String: String].self) == ["patch": "new-tax-rule"])
            #expect(newHistory.map(\.position) == [1, 2, 3, 4, 5])
        }
    }

    @Test(arguments: Backend.allCases)
    func aReplayPastTheEndOfItsHistoryTakesThePatchAndRecordsTheMarker(_ backend: Backend) async throws {
        // Version 1 recorded only the price before the worker died.
        let history = [try recorded("cut", "price:1", position: 1, name: "price", result: 100)]
        try await backend.withStore { store in
            try await store.seedInstance("cut", workflowName: "checkout", input: try JSONPayload.encode(["cut"]), history: history)
            #expect(try await approveAndFinish(version2(), "cut", on: store) == "shipped 120")
            #expect(log.all == ["new_tax", "ship"])
            let kinds = try await store.history(of: "cut").map(\.kind)
            #expect(kinds == [.activityCompleted, .patchMarker, .activityCompleted, .messageReceived, .activityCompleted])
        }
    }

    @Test(arguments: Backend.allCases)
    func theDeprecatedPatchReplaysHistoriesWithAndWithoutTheMarker(_ backend: Backend) async throws {
        try await backend.withStore { store in
            // One instance took the patch under version 2; one started under version 3 has no marker.
            try await startAndLeaveWaiting(version2(), "marked", on: store)
            try await startAndLeaveWaiting(version3(), "unmarked", on: store)
            #expect(try await approveAndFinish(version3(), "marked", on: store) == "shipped 120")
            #expect(try await approveAndFinish(version3(), "unmarked", on: store) == "shipped 120")
            #expect(try await store.history(of: "unmarked").map(\.stepID) == ["price:1", "new_tax:1", "approval", "ship:1"])
            #expect(log.count("new_tax") == 2 && log.count("ship") == 2, "no step ran twice")
        }
    }

    @Test(arguments: Backend.allCases)
    func aMarkerWhoseCallIsGoneIsSkipped(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await startAndLeaveWaiting(version2(), "marked", on: store)
            #expect(try await approveAndFinish(version3(deprecating: false), "marked", on: store) == "shipped 120")
            #expect(try await store.instance("marked")?.status == .completed)
            #expect(log.count("new_tax") == 1, "the recorded step replayed")
        }
    }

    @Test(arguments: Backend.allCases)
    func patchedFromAConcurrentTaskFailsTheRun(_ backend: Backend) async throws {
        let racy = Workflow("racy_patch") { (ctx) -> Bool in
            async let patched = ctx.patched("p")
            return try await patched
        }
        try await backend.withTestApp { app in
            let failure = try await #require(throws: WorkflowFailedError.self) { try await app.start(racy, instanceID: "r").result() }
            #expect(failure.error.message.contains("concurrent task"))
        }
    }
}
