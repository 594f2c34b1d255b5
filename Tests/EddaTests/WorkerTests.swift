@_spi(EddaStores) @testable import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Synchronization
import Testing

/// Claims, leases and the worker loop, on the real SQLite store.
@Suite("Worker: claims, leases, store failures, shutdown", .timeLimit(.minutes(3)))
struct WorkerTests {
    let log = ExecutionLog()

    @Test func storeFailuresNeverStrandTheInstanceInALiveApp() async throws {
        let log = self.log
        let step = Activity("step") { (ctx, n: Int) -> Int in log.record("step:\(n)"); return n }
        let sum = Workflow("sum") { (ctx) -> Int in
            var total = 0
            for n in 1...3 { total += try await step(ctx, n) }
            return total
        }
        // Writes: 1 create, 2 step 1, 3 step 2 (fails), 4 step 2 again (fails), 5 step 2, 6 step 3,
        // 7 finish (fails), 8 finish.
        let store = FaultyStore(try SQLiteStore.inMemory(), failingWrites: [3, 4, 7])
        let result = try await withTestApp(store: store) { app in
            try await app.start(sum).result()
        }
        #expect(result == 6)
        #expect(store.failedWrites == 3)
        let instance = try #require(try await store.instances(matching: InstanceQuery()).instances.first)
        #expect(instance.status == .completed)
        #expect(try await store.history(of: instance.instanceID).map(\.stepID) == ["step:1", "step:2", "step:3"])
        #expect(log.count("step:1") == 1, "a recorded step is replayed, not run again")
        #expect(log.count("step:2") == 3, "a step whose record failed runs again (at least once)")
    }

    @Test func anActivityThrowingCancellationErrorItselfIsRetried() async throws {
        let log = self.log
        let flaky = Activity("flaky") { (ctx) -> String in
            log.record("attempt \(ctx.attempt)")
            if ctx.attempt == 1 { throw CancellationError() }
            return "ok"
        }
        let workflow = Workflow("cancels_itself") { (ctx) -> String in try await flaky(ctx) }
        let (result, history) = try await withTestApp { app in
            let handle = try await app.start(workflow)
            return (try await handle.result(), try await app.history(of: handle.instanceID))
        }
        #expect(result == "ok")
        #expect(log.all == ["attempt 1", "attempt 2"])
        #expect(history.last?.retry?.totalAttempts == 2)
        #expect(history.last?.retry?.lastError?.type == "CancellationError")
    }

    @Test func aRunWhoseLeaseIsTakenStopsAtItsNextWrite() async throws {
        let log = self.log
        let gate = Gate()
        let first = Activity("first") { (ctx) -> Int in log.record("first"); return 1 }
        let slow = Activity("slow") { (ctx) -> Int in
            log.record("slow started")
            await gate.wait()
            return 2
        }
        let after = Activity("after") { (ctx) -> Int in log.record("after"); return 3 }
        let workflow = Workflow("taken") { (ctx) -> Int in
            try await first(ctx) + slow(ctx) + after(ctx)
        }
        let store = try SQLiteStore.inMemory()
        try await withTestApp(store: store) { app in
            let handle = try await app.start(workflow, instanceID: "taken-1")
            try await waitUntil { log.all.contains("slow started") }
            // Another worker claims the instance: new owner, new token.
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE workflow_instances SET lease_owner = 'thief', lease_token = lease_token + 1")
            }
            gate.open()
            try await waitUntil { app.instancesRunningHere.isEmpty }
            #expect(handle.instanceID == "taken-1")
        }
        #expect(try await store.history(of: "taken-1").map(\.stepID) == ["first:1"], "the slow step's record was refused")
        #expect(!log.all.contains("after"), "nothing runs after the lost lease")
        let instance = try #require(try await store.instance("taken-1"))
        #expect(instance.status == .running)
        #expect(instance.leaseOwner == "thief", "shutdown did not release a lease it no longer held")
    }

    @Test func theLeaseRenewerStopsARunSleepingThroughABackoff() async throws {
        let log = self.log
        let failing = Activity("failing", retry: RetryPolicy(maxAttempts: 5, initialInterval: .seconds(60), maxDuration: nil)) { (ctx) -> Int in
            log.record("attempt \(ctx.attempt)")
            throw URLError(.timedOut)
        }
        let workflow = Workflow("backing_off") { (ctx) -> Int in try await failing(ctx) }
        let store = try SQLiteStore.inMemory()
        var configuration = EddaApp.Configuration.testing
        configuration.maxInMemoryWait = .seconds(120)   // the minute's backoff is slept in place, holding the lease
        try await withTestApp(store: store, configuration: configuration) { app in
            try await app.start(workflow, instanceID: "b-1")
            try await waitUntil { try await store.history(of: "b-1").count == 1 }
            #expect(app.instancesRunningHere == ["b-1"])
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE workflow_instances SET lease_token = lease_token + 1")
            }
            // Only the renewer can end this run now: its backoff has 60 seconds to go.
            try await waitUntil { app.instancesRunningHere.isEmpty }
        }
        #expect(log.all == ["attempt 1"])
        #expect(try await store.history(of: "b-1").map(\.kind) == [.attemptFailed])
    }

    @Test func aRunStopsBeforeItsLeaseLapsesWhenRenewalsKeepFailing() async throws {
        let log = self.log
        let slow = Activity("slow", retry: .noRetry) { (ctx) -> Int in
            log.record("slow ran")
            try await Task.sleep(for: .milliseconds(2500))   // the lease (2 s) lapses meanwhile
            return 1
        }
        let next = Activity("next", retry: .noRetry) { (ctx) -> Int in
            log.record("next ran")
            return 2
        }
        let workflow = Workflow("cut_off") { (ctx) -> Int in try await slow(ctx) + next(ctx) }
        let store = FaultyStore(try SQLiteStore.inMemory(), renewalsFail: true)
        var configuration = EddaApp.Configuration.testing
        // Long enough that a loaded machine still starts the first step in time (no attempt starts
        // once the lease may have lapsed).
        configuration.leaseDuration = .seconds(2)
        configuration.leaseRenewalInterval = .milliseconds(100)
        try await withTestApp(store: store, configuration: configuration) { app in
            try await app.start(workflow, instanceID: "c-1")
            // The lease cannot be renewed: the run is stopped by about 1.9 s, before the lease could
            // lapse and another worker take over. The slow step returns at 2.5 s (its record is
            // still fenced by the store), and the next step never starts.
            // Up to 45 s: with the whole suite starting at once, a run may be stopped before its first
            // attempt (its lease may have lapsed by then) and wait out the lease before the next claim.
            try await waitUntil(timeout: .seconds(45)) { log.all.contains("slow ran") && app.instancesRunningHere.isEmpty }
        }
        #expect(log.all == ["slow ran"])
        #expect(try await store.history(of: "c-1").map(\.stepID).allSatisfy { $0 == "slow:1" })
    }

    @Test func tenThousandLeftRunningRunAtMostTheConfiguredNumberAtOnce() async throws {
        // No activity: the test is about how many runs are in flight, and stays cheap.
        let concurrency = ConcurrencyGauge()
        let bulk = Workflow("bulk") { (ctx, n: Int) -> Int in
            concurrency.enter()
            defer { concurrency.leave() }
            await Task.yield()
            return n
        }
        let store = try SQLiteStore.inMemory()
        // What a dead process left: 10,000 instances running, leased to it.
        try await store.writer.write { db in
            let insert = try db.makeStatement(
                sql: """
                    INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, lease_owner, lease_token, created_at, updated_at)
                    VALUES (?, 'bulk', 'test', 'running', ?, 'dead-worker', 1, ?, ?)
                    """
            )
            for index in 0..<10_000 {
                try insert.execute(arguments: [String(format: "bulk-%05d", index), "[\(index)]", index, index])
            }
        }
        var configuration = EddaApp.Configuration.testing
        configuration.maxConcurrentInstances = 8
        let app = EddaApp(store: store, serviceName: "test", configuration: configuration, logger: .quiet)
        try app.register(bulk)
        try await app.run { app in
            try await waitUntil(timeout: .seconds(150)) { try await store.statusCounts(matching: InstanceQuery(workflowName: "bulk"))[.completed] == 10_000 }
        }
        #expect(concurrency.maximum <= 8)
        #expect(concurrency.maximum >= 1)
        #expect(try await store.statusCounts(matching: InstanceQuery()) == [.completed: 10_000])
        let sample = try #require(try await store.instance("bulk-04242"))
        #expect(sample.output?.json == "4242")
    }

    @Test func shutdownDuringALongBackoffIsQuickAndTheNextStartContinuesTheCount() async throws {
        try await withTemporaryDatabase { path in
            let log = self.log
            let flaky = Activity("flaky", retry: RetryPolicy(maxAttempts: 3, initialInterval: .seconds(60), maxDuration: nil)) { (ctx) -> String in
                log.record("attempt \(ctx.attempt)")
                if ctx.attempt == 1 { throw URLError(.timedOut) }
                return "done on attempt \(ctx.attempt)"
            }
            let workflow = Workflow("patient") { (ctx) -> String in try await flaky(ctx) }

            let store = try SQLiteStore(path: path)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
            let clock = ContinuousClock()
            let backingOffSince = try await app.run { app in
                try await app.start(workflow, instanceID: "p-1")
                try await waitUntil { try await store.history(of: "p-1").count == 1 }
                return clock.now
            }
            let shutdown = clock.now - backingOffSince
            #expect(shutdown < .seconds(5), "shutdown took \(shutdown) with 60 s of backoff left")
            let released = try #require(try await store.instance("p-1"))
            #expect(released.status == .running)
            #expect(released.leaseOwner == nil, "the lease is released at shutdown")

            // The next start, past the backoff, runs attempt 2 at once.
            var configuration = EddaApp.Configuration.testing
            configuration.clock = ManualClock(now: Date().addingTimeInterval(120))
            let next = EddaApp(store: try SQLiteStore(path: path), serviceName: "test", configuration: configuration, logger: .quiet)
            try next.register(workflow)
            let result = try await next.run { app in try await app.handle(for: workflow, instanceID: "p-1").result() }
            #expect(result == "done on attempt 2")
            #expect(log.all == ["attempt 1", "attempt 2"])
        }
    }

    @Test func anAppThatDoesNotRunHandsWorkToOneThatDoes() async throws {
        try await withTemporaryDatabase { path in
            let greet = Workflow("greet") { (ctx, name: String) -> String in "hello \(name)" }
            let worker = EddaApp(store: try SQLiteStore(path: path), serviceName: "test", configuration: .testing, logger: .quiet)
            try worker.register(greet)
            let client = EddaApp(store: try SQLiteStore(path: path), serviceName: "test", configuration: .testing, logger: .quiet)
            let result = try await worker.run { _ in
                // The client never runs: its instance is created ready, the worker claims it, and
                // the client's result() reads the store until it has finished.
                try await client.start(greet, "ada", instanceID: "from-client").result()
            }
            #expect(result == "hello ada")
            #expect(try await client.instance("from-client")?.status == .completed)
        }
    }

    @Test func aSecondWorkflowUnderATakenNameIsRefused() async throws {
        let first = Workflow("orders") { (ctx, n: Int) -> String in "first \(n)" }
        let second = Workflow("orders") { (ctx, n: Int) -> String in "second \(n)" }
        try await withTestApp { app in
            try app.register(first)
            try app.register(first)  // the same workflow again: fine
            let registered = #expect(throws: EngineError.self) { try app.register(second) }
            #expect(registered?.code == .workflowNameTaken)
            #expect(registered?.message.contains("orders") == true)
            let started = await #expect(throws: EngineError.self) { try await app.start(second, 1) }
            #expect(started?.code == .workflowNameTaken)
            #expect(try await app.instances().isEmpty, "nothing was created")
            #expect(try await app.start(first, 1).result() == "first 1")
        }
    }

    @Test func aContextThatEscapedItsRunCannotRunSteps() async throws {
        let escaped = Mutex<WorkflowContext?>(nil)
        let step = Activity("step") { (ctx) -> Int in 1 }
        let workflow = Workflow("leaky") { (ctx) -> Int in
            escaped.withLock { $0 = ctx }
            return try await step(ctx)
        }
        let store = try SQLiteStore.inMemory()
        try await withTestApp(store: store) { app in
            #expect(try await app.start(workflow, instanceID: "leaky-1").result() == 1)
            let context = try #require(escaped.withLock { $0 })
            await #expect(throws: (any Error).self) { try await step(context, activityID: "late:1") }
        }
        #expect(try await store.history(of: "leaky-1").map(\.stepID) == ["step:1"])
        #expect(try await store.instance("leaky-1")?.status == .completed)
    }

    @Test func misuseInsideAnActivityFailsAtOnceInsteadOfRetrying() async throws {
        let log = self.log
        let misuse = Activity("misuse") { (ctx) -> Int in
            log.record("attempt \(ctx.attempt)")
            return try ctx.session(as: Int.self)
        }
        let workflow = Workflow("misusing") { (ctx) -> String in
            do {
                return "\(try await misuse(ctx))"
            } catch let error as TerminalError {
                return "terminal: \(error.causeType ?? "?")"
            }
        }
        let result = try await withTestApp { app in try await app.start(workflow).result() }
        #expect(result == "terminal: EngineError")
        #expect(log.all == ["attempt 1"])
    }
}

extension WorkerTests {
    @Test func aWorkerRestartedUnderTheSameIDTakesBackItsOwnLeases() async throws {
        let greet = Workflow("greet") { (ctx, name: String) -> String in "hello \(name)" }
        let store = try SQLiteStore.inMemory()
        // A worker with a fixed ID (a pod name) died holding this lease.
        _ = try await store.createLeasedInstance("mine", workflowName: "greet", input: try JSONPayload.encode(["ada"]), owner: "pod-1")
        var configuration = EddaApp.Configuration.testing
        configuration.workerID = "pod-1"
        let app = EddaApp(store: store, serviceName: "test", configuration: configuration, logger: .quiet)
        try app.register(greet)
        try await app.run { _ in
            try await waitUntil { try await store.instance("mine")?.status == .completed }
        }
        #expect(try await store.instance("mine")?.output?.json == "\"hello ada\"")
    }

    @Test func anInstanceStartedWhileAttachingFailsIsLeftForTheOwner() async throws {
        try await withTemporaryDatabase { path in
            let greet = Workflow("greet") { (ctx, name: String) -> String in "hello \(name)" }
            let owner = try SQLiteStore(path: path)
            try await owner.attachWorker("owner")
            let latecomer = EddaApp(store: try SQLiteStore(path: path), serviceName: "test", configuration: .testing, logger: .quiet)
            let error = await #expect(throws: StoreError.self) {
                try await latecomer.run { app in
                    try await app.start(greet, "ada", instanceID: "handed-over")
                    try await Task.sleep(for: .seconds(60))
                }
            }
            #expect(error?.code == .databaseInUse, "the app's own error, not the body's")
            // If start won the race with the failing attach, the instance is ready for the owner,
            // not leased to a worker that never ran.
            if let instance = try await owner.instance("handed-over") {
                #expect(instance.leaseOwner == nil)
            }
            try await owner.detachWorker("owner")
        }
    }

    @Test func aStoreThatDoesNotLeaseANewInstanceLeaksNoCapacity() async throws {
        let greet = Workflow("greet") { (ctx, name: String) -> String in "hello \(name)" }
        var configuration = EddaApp.Configuration.testing
        configuration.maxConcurrentInstances = 1
        let store = FaultyStore(try SQLiteStore.inMemory(), leasesNewInstances: false)
        let app = EddaApp(store: store, serviceName: "test", configuration: configuration, logger: .quiet)
        let results = try await app.run { app in
            var results: [String] = []
            for name in ["ada", "grace", "linus"] {
                results.append(try await app.start(greet, name).result())
            }
            return results
        }
        #expect(results == ["hello ada", "hello grace", "hello linus"])
        #expect(app.instancesRunningHere.isEmpty)
    }

    @Test func registeringAWorkflowLaterMakesItsInstancesResumable() async throws {
        let late = Workflow("late") { (ctx, n: Int) -> Int in n + 1 }
        let store = try SQLiteStore.inMemory()
        try await store.seedInstance("old", workflowName: "late", input: try JSONPayload.encode([41]))
        let app = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
        let result = try await app.run { app in
            try await waitUntil { app.unresumableWorkflows["late"] == 1 }
            try app.register(late)
            #expect(app.unresumableWorkflows["late"] == nil)
            return try await app.handle(for: late, instanceID: "old").result()
        }
        #expect(result == 42)
    }

    @Test func twoWorkersOnOneInMemoryStoreAreRefused() async throws {
        let store = try SQLiteStore.inMemory()
        let first = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
        let second = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
        try await first.run { _ in
            let error = await #expect(throws: StoreError.self) { try await second.run { _ in 1 } }
            #expect(error?.code == .databaseInUse)
        }
        // Once the first stops, the store is free again.
        let third = EddaApp(store: store, serviceName: "test", configuration: .testing, logger: .quiet)
        #expect(try await third.run { _ in 3 } == 3)
    }

    @Test func aCancelledBackoffThrowsInsteadOfEndingEarly() async throws {
        let run = ActiveRun(instanceID: "i", leaseValidUntil: nil)
        let sleeping = Task {
            try await run.sleep(until: Date().addingTimeInterval(60), clock: SystemClock())
        }
        sleeping.cancel()
        await #expect(throws: CancellationError.self) { try await sleeping.value }
        run.stop(.shutdown)
        await #expect(throws: RunStopped.self) {
            try await run.sleep(until: Date().addingTimeInterval(60), clock: SystemClock())
        }
    }

    @Test func aManualClockSleepCancelledBeforeItStartsThrows() async throws {
        let clock = ManualClock()
        let sleeping = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(until: clock.now().addingTimeInterval(60))
        }
        await #expect(throws: CancellationError.self) { try await sleeping.value }
        #expect(clock.pendingDeadlines.isEmpty)
    }
}

/// Opens once; every waiter before and after passes.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let passNow = state.withLock { state -> Bool in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if passNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

/// Counts how many callers are inside at once, and the most there ever were.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex<(now: Int, maximum: Int)>((0, 0))

    func enter() { state.withLock { $0.now += 1; $0.maximum = max($0.maximum, $0.now) } }
    func leave() { state.withLock { $0.now -= 1 } }
    var maximum: Int { state.withLock { $0.maximum } }
}

/// Polls `condition` every 5 ms until it holds, or fails the test after `timeout`.
func waitUntil(
    timeout: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition still false after \(timeout)", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
