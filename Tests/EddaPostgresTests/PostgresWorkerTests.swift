@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import InMemoryLogging
import Logging
import PostgresNIO
import Synchronization
import Testing

/// Several workers on one PostgreSQL database.
@Suite("PostgreSQL: workers sharing one database", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresWorkerTests {
    @Test func aWorkflowRunsEndToEnd() async throws {
        let double = Activity("double") { (ctx, n: Int) -> Int in n * 2 }
        let addOne = Activity("add_one") { (ctx, n: Int) -> Int in n + 1 }
        let workflow = Workflow("arithmetic") { (ctx, n: Int) -> Int in try await addOne(ctx, try await double(ctx, n)) }
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let store = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        let (result, history) = try await withTestApp(store: store) { app in
            let handle = try await app.start(workflow, 20)
            return (try await handle.result(), try await app.history(of: handle.instanceID))
        }
        #expect(result == 41)
        #expect(history.map(\.stepID) == ["double:1", "add_one:1"])
        #expect(history.map { $0.payload?.json } == ["40", "41"])
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
    }

    @Test func workSpreadsAndEachStepRunsOnce() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let executions = Mutex<[String: [String]]>([:])
        func workflow(for worker: String) -> Workflow<Int, String> {
            let step = Activity("step") { (ctx, n: Int) -> Int in
                executions.withLock { $0["\(ctx.instanceID) \(ctx.stepID)", default: []].append(worker) }
                // Long enough that A's four slots fill while it starts the forty: the rest are
                // created ready, for either worker (with 5 ms, A could finish each before the next start).
                try await Task.sleep(for: .milliseconds(30))
                return n
            }
            return Workflow("shared") { (ctx, n: Int) -> String in
                var total = 0
                for index in 1...3 { total += try await step(ctx, index) }
                return "\(n):\(total)"
            }
        }
        var configuration = EddaApp.Configuration.testing
        configuration.maxConcurrentInstances = 4
        configuration.workerID = "worker-a"
        let storeA = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        let appA = EddaApp(store: storeA, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)
        let sharedA = workflow(for: "worker-a")
        try appA.register(sharedA)
        configuration.workerID = "worker-b"
        let storeB = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        let appB = EddaApp(store: storeB, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)
        let sharedB = workflow(for: "worker-b")
        try appB.register(sharedB)

        let results = try await appB.run { appB in
            try await appA.run { appA in
                // Both stores migrated and listening before the work arrives (under a loaded test
                // run, B's start-up could otherwise take longer than A needs for all forty).
                try await storeA.ready()
                try await storeB.ready()
                var handles: [WorkflowHandle<String>] = []
                for n in 0..<40 {
                    handles.append(try await appA.start(sharedA, n, instanceID: "shared-\(n)"))
                }
                // Results read through the other worker's app: it learns of them from the store.
                var results: [String] = []
                for handle in handles {
                    results.append(try await appB.handle(for: sharedB, instanceID: handle.instanceID).result())
                }
                return results
            }
        }
        #expect(results == (0..<40).map { "\($0):6" })
        let ran = executions.withLock { $0 }
        #expect(ran.count == 40 * 3)
        #expect(ran.values.allSatisfy { $0.count == 1 }, "a step ran twice: \(ran.filter { $0.value.count > 1 })")
        let byWorker = Dictionary(grouping: ran.values.flatMap { $0 }, by: { $0 }).mapValues(\.count)
        #expect((byWorker["worker-a"] ?? 0) > 0)
        #expect((byWorker["worker-b"] ?? 0) > 0, "the second worker claimed nothing: \(byWorker)")
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
    }

    @Test func twoServicesShareOneSchemaAndEachJudgesOnlyItsOwnInstances() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        let charge = Workflow("charge") { (ctx, amount: Int) -> Int in
            let go = try await ctx.waitForEvent(type: "charge.go", as: Int.self)
            return amount + go.data
        }
        let ship = Workflow("ship") { (ctx, parcel: String) -> String in "shipped \(parcel)" }
        func app(_ service: String, _ workerID: String) throws -> (EddaApp, PostgresStore) {
            var configuration = EddaApp.Configuration.testing
            configuration.workerID = workerID
            let store = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
            return (EddaApp(store: store, serviceName: service, configuration: configuration, logger: PostgresTestDatabase.quiet), store)
        }
        let (billing, billingStore) = try app("billing", "billing-1")
        try billing.register(charge)
        let (shipping, shippingStore) = try app("shipping", "shipping-1")
        try shipping.register(ship)

        let (charged, shipped) = try await billing.run { billing in
            try await billingStore.ready()
            // Running (waiting for its event) when the shipping service's worker starts.
            let handle = try await billing.start(charge, 40, instanceID: "charge-1")
            return try await shipping.run { shipping in
                try await shippingStore.ready()
                let shipped = try await shipping.start(ship, "box").result()
                // The other service's instance is not this worker's to judge: its result is awaited
                // like any instance running elsewhere, not refused as unresumable.
                let awaited = Task { try await shipping.handle(for: charge, instanceID: handle.instanceID).result() }
                try await shipping.sendEvent(try CloudEvent(type: "charge.go", source: "/test", json: 2), to: handle.instanceID)
                return (try await awaited.value, shipped)
            }
        }
        #expect(charged == 42)
        #expect(shipped == "shipped box")
        #expect(shipping.unresumableWorkflows.isEmpty, "shipping judged billing's instances: \(shipping.unresumableWorkflows)")
        #expect(billing.unresumableWorkflows.isEmpty)
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
    }

    /// Whole-body transactional steps hold a pooled connection for their whole body: six of them on
    /// a pool of four (one of which listens) used to starve the renewals queued behind them, and the
    /// worker lost its own leases and claimed its own instances again.
    @Test func renewalsNeverQueueBehindStepsHoldingThePool() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        let runs = Mutex<[String: Int]>([:])
        let hold = Activity("hold", transaction: .wholeBody) { (ctx) -> Int in
            runs.withLock { $0[ctx.instanceID, default: 0] += 1 }
            try await Task.sleep(for: .milliseconds(2_500))
            return 1
        }
        let workflow = Workflow("holding") { (ctx) -> Int in try await hold(ctx) }
        var configuration = EddaApp.Configuration.testing
        // Margins wide enough for a loaded CI machine: a 2 s lease, renewed every 250 ms, against
        // steps that hold their connections for 2.5 s.
        configuration.leaseDuration = .seconds(2)
        configuration.leaseRenewalInterval = .milliseconds(250)
        let store = try PostgresStore(
            configuration: PostgresTestDatabase.configuration(schema: schema, maximumConnections: 4), logger: PostgresTestDatabase.quiet
        )
        let results = try await withTestApp(store: store, configuration: configuration) { app in
            var handles: [WorkflowHandle<Int>] = []
            for n in 0..<6 { handles.append(try await app.start(workflow, instanceID: "hold-\(n)")) }
            var results: [Int] = []
            for handle in handles { results.append(try await handle.result()) }
            return results
        }
        #expect(results == Array(repeating: 1, count: 6))
        #expect(runs.withLock { $0 }.values.sorted() == Array(repeating: 1, count: 6), "a step ran again: \(runs.withLock { $0 })")
        try await PostgresTestDatabase.withStore(schema: schema) { store in
            let rows = try await store.client.query(
                PostgresQuery(unsafeSQL: "SELECT instance_id, lease_token::bigint FROM \"\(schema)\".workflow_instances ORDER BY instance_id")
            )
            var tokens: [String: Int64] = [:]
            for try await (id, token) in rows.decode((String, Int64).self) { tokens[id] = token }
            #expect(tokens.values.allSatisfy { $0 == 1 }, "an instance was claimed again after its lease lapsed: \(tokens)")
        }
    }

    /// A worker's wall clock, off from the database server's by `offset`.
    struct OffsetClock: WorkflowClock {
        let offset: TimeInterval
        func now() -> Date { Date().addingTimeInterval(offset) }
        func sleep(until deadline: Date) async throws { try await SystemClock().sleep(until: deadline.addingTimeInterval(-offset)) }
    }

    /// Timers and backoffs are set and claimed on workers' clocks: a worker whose clock is off from
    /// the database server's by more than `maxClockSkew` says so, and by how much.
    @Test(arguments: [-10.0, 0, 10.0])
    func aWorkerWhoseClockIsOffFromTheServersWarns(_ offset: TimeInterval) async throws {
        let log = InMemoryLogHandler()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = OffsetClock(offset: offset)
        try await PostgresTestDatabase.withStore { store in
            try await withTestApp(store: store, configuration: configuration, logger: Logger(label: "skew") { _ in log }) { app in
                _ = try await app.start(Workflow("skewed") { (ctx) -> Int in 1 }).result()
                // The check runs as the worker starts; give it time to answer (a loaded machine is slow).
                let deadline = ContinuousClock.now + (offset == 0 ? .milliseconds(500) : .seconds(20))
                while ContinuousClock.now < deadline, !log.entries.contains(where: { "\($0.message)".contains("clock is") }) {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        let warnings = log.entries.filter { $0.level == .warning }.map { "\($0.message)" }.filter { $0.contains("clock") }
        if offset == 0 {
            #expect(warnings.isEmpty, "\(warnings)")
        } else {
            #expect(warnings.count == 1, "\(warnings)")
            // About 10 s (less half a round trip, which a loaded machine may make long).
            #expect(warnings.first?.contains(offset > 0 ? "s ahead of the database server's" : "s behind the database server's") == true, "\(warnings)")
            #expect(warnings.first?.hasPrefix("this worker's clock is 9.") == true || warnings.first?.hasPrefix("this worker's clock is 10.") == true, "\(warnings)")
            #expect(warnings.first?.contains(offset > 0 ? "early" : "late") == true)
        }
    }

    @Test func anExpiredLeaseMovesOnAndItsHolderCanWriteNothing() async throws {
        try await PostgresTestDatabase.withStore { store in
            _ = try await store.createInstance(
                NewInstance(instanceID: "z", workflowName: "w", serviceName: "test", input: JSONPayload(json: "[]")), leasedTo: nil
            )
            let zombie = try #require(
                try await store.claim(ClaimRequest(lease: LeaseRequest(owner: "zombie", duration: .seconds(1)), limit: 1, workflowNames: ["w"])).first
            )
            let live = LeaseRequest(owner: "live", duration: .seconds(30))
            // (A second: a loaded CI machine took more than 100 ms between two claims.)
            #expect(try await store.claim(ClaimRequest(lease: live, limit: 1, workflowNames: ["w"])).isEmpty, "a live lease is not taken")
            try await Task.sleep(for: .milliseconds(1_100))
            let taken = try #require(try await store.claim(ClaimRequest(lease: live, limit: 1, workflowNames: ["w"])).first)
            #expect(taken.lease.token == zombie.lease.token + 1)

            // The zombie wakes up: nothing it writes lands, and renewing tells it the lease is gone.
            let step = HistoryEvent(instanceID: "z", stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1"))
            let refused = await #expect(throws: StoreError.self) { try await store.append(step, lease: zombie.lease) }
            #expect(refused?.code == .leaseLost)
            #expect(try await store.renew([zombie.lease], for: .seconds(30)) == ["z"])
            #expect(try await store.renew([taken.lease], for: .seconds(30)).isEmpty)
            try await store.append(step, lease: taken.lease)
            #expect(try await store.history(of: "z").count == 1)
        }
    }

    @Test func aCancellationFromAnotherProcessReachesTheRunningWorker() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let log = Mutex<[String]>([])
        let started = Atomic(false)
        let cancelled = Atomic(false)
        let undo = Compensation("undo") { (ctx, result: Int, n: Int) in log.withLock { $0.append("undo \(n)") } }
        let step = Activity("step") { (ctx, n: Int) -> Int in
            log.withLock { $0.append("step \(n)") }
            if n == 2 {
                started.store(true, ordering: .relaxed)
                // The cancellation arrives meanwhile: this step runs on until it is in the store, and
                // a little more for the worker to hear of it (NOTIFY; the renewals every 50 ms otherwise).
                while !cancelled.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
                try await Task.sleep(for: .milliseconds(300))
            }
            return n
        }.onFailure(undo)
        let workflow = Workflow("long") { (ctx) -> Int in
            var total = 0
            for n in 1...5 { total += try await step(ctx, n) }
            return total
        }
        var configuration = EddaApp.Configuration.testing
        configuration.workerID = "worker-a"
        let storeA = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        let appA = EddaApp(store: storeA, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)
        try appA.register(workflow)
        // Another process's app (it runs no worker here: it only cancels).
        let storeB = try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet)
        let appB = EddaApp(store: storeB, serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet)

        try await appA.run { appA in
            let handle = try await appA.start(workflow, instanceID: "long-1")
            while !started.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
            try await appB.run { appB in try await appB.cancel("long-1") }
            cancelled.store(true, ordering: .relaxed)
            await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
        }
        #expect(log.withLock { $0 } == ["step 1", "step 2", "undo 2", "undo 1"])
        let status = try await PostgresTestDatabase.withStore(schema: schema) { store in try await store.instance("long-1")?.status }
        #expect(status == .cancelled)
    }

    @Test func notificationsWakeOtherProcessesWorkers() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        try await PostgresTestDatabase.withStore(schema: schema) { storeA in
            try await PostgresTestDatabase.withStore(schema: schema) { storeB in
                // B waits; A, on its own connection pool, makes instances ready until B hears of one.
                // (B's LISTEN may not be active at the very first NOTIFY.)
                let clock = ContinuousClock()
                let started = clock.now
                let heard = Task { () -> Duration in
                    await storeB.wakeUps.wait(upTo: .seconds(20))
                    return clock.now - started
                }
                // Notifications name the finished instances: only their own watches wake.
                let watched = storeB.outcomes.watch("n3")
                let unrelated = storeB.outcomes.watch("never")
                defer { watched.end(); unrelated.end() }
                let outcome = Task { () -> Duration in
                    await watched.wait(upTo: .seconds(20))
                    return clock.now - started
                }
                let notWoken = Task { () -> Duration in
                    await unrelated.wait(upTo: .seconds(2))
                    return clock.now - started
                }
                var index = 0
                while clock.now - started < .seconds(10) {
                    let created = try await storeA.createInstance(
                        NewInstance(instanceID: "n\(index)", workflowName: "w", serviceName: "test", input: JSONPayload(json: "[]")),
                        leasedTo: LeaseRequest(owner: "a", duration: .seconds(30))
                    )
                    guard case .created(_, let lease?) = created else { break }
                    try await storeA.release(lease, readyAt: nil)
                    let again = try #require(try await storeA.claim(ClaimRequest(lease: LeaseRequest(owner: "a", duration: .seconds(30)), limit: 1, workflowNames: ["w"])).first)
                    try await storeA.finishInstance(lease: again.lease, with: .completed(JSONPayload(json: "1")))
                    index += 1
                    try await Task.sleep(for: .milliseconds(50))
                    if index > 3, clock.now - started > .seconds(1) { break }
                }
                #expect(await heard.value < .seconds(10), "B never heard that an instance became ready")
                #expect(await outcome.value < .seconds(10), "B never heard that n3 finished")
                #expect(await notWoken.value >= .seconds(2), "a watch of an instance that did not finish was woken")
            }
        }
    }

    @Test func concurrentAppendsShareStatementsAndEachGetsItsOwnAnswer() async throws {
        try await PostgresTestDatabase.withStore { store in
            let request = LeaseRequest(owner: "w", duration: .seconds(30))
            func make(_ id: String) async throws -> Lease {
                guard case .created(_, let lease?) = try await store.createInstance(
                    NewInstance(instanceID: id, workflowName: "w", serviceName: "test", input: JSONPayload(json: "[]")), leasedTo: request
                ) else { throw StoreError(.database, "not created") }
                return lease
            }
            let live = try await make("live")
            let stale = try await make("stale")
            try await store.release(stale, readyAt: nil)
            _ = try await store.claim(ClaimRequest(lease: LeaseRequest(owner: "other", duration: .seconds(30)), limit: 1, workflowNames: ["w"]))
            try await store.append(
                HistoryEvent(instanceID: "live", stepID: "dup", position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "0")),
                lease: live
            )
            let outcomes = await withTaskGroup(of: (String, String).self) { group in
                for index in 0..<48 {
                    group.addTask {
                        let (instance, lease, step) = index % 8 == 0 ? ("stale", stale, "s:\(index)")
                            : index == 5 ? ("live", live, "dup") : ("live", live, "s:\(index)")
                        do {
                            try await store.append(
                                HistoryEvent(instanceID: instance, stepID: step, position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "\(index)")),
                                lease: lease
                            )
                            return (step, "ok")
                        } catch let error as StoreError {
                            return (step, error.code == .leaseLost ? "leaseLost" : "refused")
                        } catch {
                            return (step, "other")
                        }
                    }
                }
                return await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
            }
            #expect(outcomes.filter { $0.value == "leaseLost" }.count == 6, "every append under the stale lease is refused by its fence")
            #expect(outcomes["dup"] == "refused", "a second outcome for a step is refused")
            #expect(outcomes.filter { $0.value == "ok" }.count == 41)
            #expect(try await store.history(of: "stale").isEmpty)
            #expect(try await store.history(of: "live").count == 42)
        }
    }

    @Test func aStaleAndALiveAppendForOneStepInOneBatchGetTheirOwnAnswers() async throws {
        try await PostgresTestDatabase.withStore { store in
            _ = try await store.createInstance(
                NewInstance(instanceID: "x", workflowName: "w", serviceName: "test", input: JSONPayload(json: "[]")),
                leasedTo: LeaseRequest(owner: "w", duration: .seconds(30))
            )
            let stale = Lease(instanceID: "x", owner: "w", token: 1)
            try await store.release(stale, readyAt: nil)
            let live = try #require(
                try await store.claim(ClaimRequest(lease: LeaseRequest(owner: "w", duration: .seconds(30)), limit: 1, workflowNames: ["w"])).first?.lease
            )
            var staleAccepted = 0
            var liveRefused = 0
            for trial in 0..<40 {
                let step = "s:\(trial)"
                async let fromStale: Bool = {
                    do {
                        try await store.append(HistoryEvent(instanceID: "x", stepID: step, position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "0")), lease: stale)
                        return true
                    } catch { return false }
                }()
                async let fromLive: Bool = {
                    do {
                        try await store.append(HistoryEvent(instanceID: "x", stepID: step, position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1")), lease: live)
                        return true
                    } catch { return false }
                }()
                if await fromStale { staleAccepted += 1 }
                if await !fromLive { liveRefused += 1 }
            }
            #expect(staleAccepted == 0, "a record refused by its fence was reported written")
            #expect(liveRefused == 0)
            #expect(try await store.history(of: "x").allSatisfy { $0.payload?.json == "1" })
        }
    }

    @Test func appendsAndRenewalsOfOneWorkerNeverDeadlock() async throws {
        try await PostgresTestDatabase.withStore { store in
            let request = LeaseRequest(owner: "w", duration: .seconds(30))
            var leases: [Lease] = []
            for index in 0..<60 {
                guard case .created(_, let lease?) = try await store.createInstance(
                    NewInstance(instanceID: "i\(index)", workflowName: "w", serviceName: "test", input: JSONPayload(json: "[]")), leasedTo: request
                ) else { continue }
                leases.append(lease)
            }
            let all = leases
            let failures = FailureCount()
            let deadline = ContinuousClock.now + .milliseconds(1500)
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while ContinuousClock.now < deadline {
                        do { _ = try await store.renew(all.shuffled(), for: .seconds(30)) } catch { failures.add() }
                        try? await Task.sleep(for: .milliseconds(5))
                    }
                }
                for worker in 0..<24 {
                    group.addTask {
                        var step = 0
                        while ContinuousClock.now < deadline {
                            let lease = all[(worker * 7 + step) % all.count]
                            step += 1
                            do {
                                try await store.append(
                                    HistoryEvent(instanceID: lease.instanceID, stepID: "w\(worker):\(step)", position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1")),
                                    lease: lease
                                )
                            } catch {
                                failures.add()
                            }
                        }
                    }
                }
            }
            #expect(failures.value == 0, "appends or renewals failed (a deadlock is SQLSTATE 40P01)")
        }
    }
}

final class FailureCount: Sendable {
    private let count = Mutex(0)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}
