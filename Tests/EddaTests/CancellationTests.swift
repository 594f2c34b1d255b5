import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

/// `app.cancel(_:)`: the instance stops at its next step boundary, compensates, ends `cancelled`.
@Suite("Cancellation", .timeLimit(.minutes(1)))
struct CancellationTests {
    let log = ExecutionLog()

    /// step_a (compensated) → step_b (waits for `gate` to open) → a timer of `sleep` → step_c.
    func workflow(gate: Gate, sleep: Duration = .zero) -> Workflow<String, String> {
        let log = self.log
        let undo = Compensation("undo") { (ctx, result: String) in log.record("undo \(result)") }
        let stepA = Activity("step_a") { (ctx) -> String in
            log.record("a")
            return "a"
        }.onFailure(undo)
        let stepB = Activity("step_b") { (ctx) -> String in
            log.record("b")
            await gate.wait()
            return "b"
        }.onFailure(undo)
        let stepC = Activity("step_c") { (ctx) -> String in
            log.record("c")
            return "c"
        }
        return Workflow("cancellable") { (ctx, input: String) -> String in
            _ = try await stepA(ctx)
            _ = try await stepB(ctx)
            if sleep > .zero { try await ctx.sleep(for: sleep) }
            return try await stepC(ctx)
        }
    }

    @Test(arguments: Backend.allCases)
    func aRunningInstanceStopsAtItsNextStepCompensatesAndEndsCancelled(_ backend: Backend) async throws {
        let gate = Gate()
        let workflow = self.workflow(gate: gate)
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                let handle = try await app.start(workflow, "x", instanceID: "c1")
                try await waitUntil { log.all.contains("b") }
                try await app.cancel("c1")
                gate.open()   // the step in progress finishes and is recorded; the next one does not start
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(log.all == ["a", "b", "undo b", "undo a"])
            let instance = try #require(try await store.instance("c1"))
            #expect(instance.status == .cancelled)
            #expect(instance.error?.type == "WorkflowCancelledError")
            #expect(try await store.history(of: "c1").map(\.stepID) == ["step_a:1", "step_b:1", "compensate:step_b:1", "compensate:step_a:1"])
        }
    }

    @Test(arguments: Backend.allCases)
    func aWaitingInstanceIsWokenToRunItsCancellation(_ backend: Backend) async throws {
        let gate = Gate()
        gate.open()
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.maxInMemoryWait = .zero
        let workflow = self.workflow(gate: gate, sleep: .seconds(86_400))
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                let handle = try await app.start(workflow, "y", instanceID: "c2")
                try await waitUntil { try await store.instance("c2")?.readyAt != nil }
                try await app.cancel("c2")   // no clock advance: the day-long timer is cut short
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(log.all == ["a", "b", "undo b", "undo a"])
            #expect(try await store.instance("c2")?.status == .cancelled)
        }
    }

    /// Another process asks while a step runs; the run reaches a long timer before its worker
    /// hears of it: the release keeps the instance ready, and the cancellation runs now, not in a day.
    @Test(arguments: Backend.allCases)
    func aCancellationFromElsewhereIsNotPostponedByTheWaitItRacesWith(_ backend: Backend) async throws {
        let gate = Gate()
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.maxInMemoryWait = .zero
        configuration.leaseRenewalInterval = .seconds(3600)   // the worker would hear of it in an hour
        configuration.leaseDuration = .seconds(7200)   // PostgreSQL's leases lapse: they outlast the renewal interval
        let workflow = self.workflow(gate: gate, sleep: .seconds(86_400))
        try await backend.withStore { store in
            // Another process asks: PostgreSQL's NOTIFY would tell the worker at once; here it is not told.
            try await withTestApp(store: FaultyStore(store, hearsCancellations: false), configuration: configuration) { (app: EddaApp) async throws in
                let handle = try await app.start(workflow, "w", instanceID: "c5")
                try await waitUntil { log.all.contains("b") }
                guard case .requested = try await store.requestCancellation(of: "c5") else {
                    Issue.record("not requested")
                    return
                }
                gate.open()
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(log.all == ["a", "b", "undo b", "undo a"])
            #expect(try await store.instance("c5")?.status == .cancelled)
        }
    }

    @Test(arguments: Backend.allCases)
    func cancellingAFinishedOrUnknownInstanceSaysSoAndChangesNothing(_ backend: Backend) async throws {
        let gate = Gate()
        gate.open()
        let workflow = self.workflow(gate: gate)
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                #expect(try await app.start(workflow, "z", instanceID: "c3").result() == "c")
                let finished = await #expect(throws: EngineError.self) { try await app.cancel("c3") }
                #expect(finished?.code == .alreadyFinished)
                #expect(finished?.message.contains("completed") == true)
                let unknown = await #expect(throws: EngineError.self) { try await app.cancel("nope") }
                #expect(unknown?.code == .instanceNotFound)
            }
            let instance = try #require(try await store.instance("c3"))
            #expect(instance.status == .completed)
            #expect(instance.cancelRequested == false)
        }
    }

    @Test(arguments: Backend.allCases)
    func aRetryBackoffEndsAtOnce(_ backend: Backend) async throws {
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.maxInMemoryWait = .seconds(7200)
        let flaky = Activity("flaky", retry: RetryPolicy(maxAttempts: 5, initialInterval: .seconds(3600), maxDuration: nil)) { (ctx) -> Int in
            throw URLError(.timedOut)
        }
        let workflow = Workflow("backing_off") { (ctx) -> Int in try await flaky(ctx) }
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                let handle = try await app.start(workflow, instanceID: "c4")
                await clock.waitForSleepers(count: 1)   // an hour's backoff, in memory
                try await app.cancel("c4")
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(try await store.instance("c4")?.status == .cancelled)
            #expect(try await store.history(of: "c4").map(\.kind) == [.attemptFailed])
        }
    }
}
