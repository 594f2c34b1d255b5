@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

@Suite("Queues", .timeLimit(.minutes(1)))
struct QueueTests {
    let log = ExecutionLog()
    let gate = Gate()
    /// One place: a second instance waits queued while the first runs.
    let queue = Queue("one_at_a_time", concurrency: 1)

    /// A workflow whose one step logs "<instance> started", waits for the gate and returns its input plus `add`.
    func gatedWorkflow(adding add: Int) -> Workflow<Int, Int> {
        let (log, gate) = (self.log, self.gate)
        let step = Activity("step") { (ctx, n: Int) -> Int in
            log.record("\(ctx.instanceID) started")
            await gate.wait()
            return n + add
        }
        return Workflow("queued") { (ctx, n: Int) -> Int in try await step(ctx, n) }
    }

    @Test(arguments: Backend.allCases)
    func anInstanceWaitsQueuedForRoomAndADeduplicationIDIsRefusedUntilItsHolderFinishes(_ backend: Backend) async throws {
        let (log, gate, queue) = (self.log, self.gate, self.queue)
        let workflow = gatedWorkflow(adding: 1)
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                app.register(queue)
                let first = try await app.start(workflow, 1, instanceID: "first", on: queue, deduplicationID: "order-1")
                let second = try await app.start(workflow, 2, instanceID: "second", on: queue, priority: 5)
                try await waitUntil { log.all.contains("first started") }
                // The queue's one place is taken: the second stays queued, and says so.
                #expect(try await app.instance("second")?.status == .queued)
                #expect(try await app.instances(status: .queued).map(\.instanceID) == ["second"])
                do {
                    try await app.start(workflow, 3, instanceID: "third", on: queue, deduplicationID: "order-1")
                    Issue.record("a second start with a deduplication ID in use was accepted")
                } catch let error as EngineError {
                    #expect(error.code == .deduplicationIDInUse)
                    #expect(error.instanceID == "first", "the error names the holder")
                    #expect(error.message.contains("first"))
                }
                #expect(try await app.instance("third") == nil)
                gate.open()
                #expect(try await first.result() == 2)
                #expect(try await second.result() == 3)
                // Its holder finished: the ID is free again.
                let fourth = try await app.start(workflow, 4, instanceID: "fourth", on: queue, deduplicationID: "order-1")
                #expect(try await fourth.result() == 5)
            }
        }
        #expect(log.all.firstIndex(of: "first started")! < log.all.firstIndex(of: "second started")!)
    }

    @Test(arguments: Backend.allCases)
    func aCancelledQueuedInstanceLeavesTheLineAtOnceAndRunsNoStep(_ backend: Backend) async throws {
        let (log, gate, queue) = (self.log, self.gate, self.queue)
        let workflow = gatedWorkflow(adding: 0)
        var configuration = EddaApp.Configuration.testing
        // Far beyond the suite's time limit: only the cancellation's wake-up can take it out of line.
        configuration.pollInterval = .seconds(600)
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                app.register(queue)
                let first = try await app.start(workflow, 1, instanceID: "first", on: queue)
                try await waitUntil { log.all.contains("first started") }
                let second = try await app.start(workflow, 2, instanceID: "second", on: queue)
                guard case .requested(let marked) = try await app.requestCancellation(of: "second") else {
                    Issue.record("cancelling a queued instance did not take effect")
                    return
                }
                #expect(marked.status == .queued)
                #expect(marked.cancelRequested)
                // Its place is still taken by the first, which has not finished: the second does not wait for it.
                await #expect(throws: WorkflowCancelledError.self) { try await second.result() }
                #expect(try await app.instance("second")?.status == .cancelled)
                #expect(try await app.instance("first")?.status == .running)
                gate.open()
                #expect(try await first.result() == 1)
            }
        }
        #expect(!log.all.contains("second started"))
    }

    @Test(arguments: Backend.allCases)
    func anInstanceStillQueuedAtItsQueueTimeoutIsCancelledWithTheReason(_ backend: Backend) async throws {
        let (log, gate, queue) = (self.log, self.gate, self.queue)
        let workflow = gatedWorkflow(adding: 0)
        var configuration = EddaApp.Configuration.testing
        // Far beyond the suite's time limit: the worker must wake for the queue deadline by itself.
        configuration.pollInterval = .seconds(600)
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                app.register(queue)
                let first = try await app.start(workflow, 1, instanceID: "first", on: queue)
                try await waitUntil { log.all.contains("first started") }
                let patient = try await app.start(workflow, 3, instanceID: "patient", on: queue, queueTimeout: .seconds(60))
                let impatient = try await app.start(workflow, 2, instanceID: "impatient", on: queue, queueTimeout: .milliseconds(200))
                let queued = try #require(try await app.instance("impatient"))
                let queueDeadline = try #require(queued.queueDeadline)
                #expect(queued.queueTimeout == .milliseconds(200))
                #expect(abs(queueDeadline.timeIntervalSince(queued.createdAt) - 0.2) < 0.01)
                do {
                    _ = try await impatient.result()
                    Issue.record("an instance past its queue timeout completed")
                } catch let error as WorkflowCancelledError {
                    let exceeded = try #require(error.deadlineExceeded)
                    #expect(exceeded.kind == .queueTimeout)
                    #expect(exceeded.timeout == .milliseconds(200))
                    #expect(exceeded.deadline.millisecondsSince1970 == queueDeadline.millisecondsSince1970)
                    #expect(error.reason?.contains("still queued when its queue timeout 200 ms passed") == true, "\(error.reason ?? "")")
                }
                #expect(try await app.instance("impatient")?.status == .cancelled)
                // One admitted before its queue timeout runs, and its queue deadline no longer applies.
                #expect(try await app.instance("patient")?.status == .queued)
                gate.open()
                #expect(try await first.result() == 1)
                #expect(try await patient.result() == 3)
                #expect(try await app.instance("patient")?.queueDeadline == nil)
            }
        }
        #expect(!log.all.contains("impatient started"))
    }

    @Test
    func aQueueTimeoutMustBePositiveAndNeedsAQueue() async throws {
        let workflow = gatedWorkflow(adding: 0)
        try await Backend.sqlite.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                app.register(queue)
                await #expect { try await app.start(workflow, 1, on: queue, queueTimeout: .zero) } throws: { error in
                    (error as? EngineError)?.code == .invalidQueueOptions && "\(error)".contains("at least 1 ms")
                }
                try app.register(workflow)
                await #expect { try await app.start(workflowNamed: "queued", input: JSONPayload(json: "[1]"), queueTimeout: .seconds(1)) } throws: { error in
                    (error as? EngineError)?.code == .invalidQueueOptions && "\(error)".contains("name the queue too")
                }
                #expect(try await app.instances().isEmpty, "nothing was started")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aRunThatEndsLetsTheNextQueuedInstanceInAtOnceWithoutWaitingForAPoll(_ backend: Backend) async throws {
        let (gate, queue) = (self.gate, self.queue)
        gate.open()
        let workflow = gatedWorkflow(adding: 10)
        var configuration = EddaApp.Configuration.testing
        // Far beyond the suite's time limit: only the end of each run can let the next one in.
        configuration.pollInterval = .seconds(600)
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                app.register(queue)
                var handles: [WorkflowHandle<Int>] = []
                for n in 0..<5 { handles.append(try await app.start(workflow, n, instanceID: "next-\(n)", on: queue)) }
                var results: [Int] = []
                for handle in handles { results.append(try await handle.result()) }
                #expect(results == [10, 11, 12, 13, 14])
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aRateLimitAdmitsNoMoreThanItsLimitInAnyPeriod(_ backend: Backend) async throws {
        let period = Duration.milliseconds(300)
        let queue = Queue("rate_limited", rateLimit: .init(2, per: period))
        gate.open()
        let workflow = gatedWorkflow(adding: 1)
        var configuration = EddaApp.Configuration.testing
        configuration.pollInterval = .milliseconds(10)
        try await backend.withStore { store in
            try await withTestApp(store: store, configuration: configuration) { (app: EddaApp) async throws in
                app.register(queue)
                var handles: [WorkflowHandle<Int>] = []
                for n in 0..<5 { handles.append(try await app.start(workflow, n, instanceID: "rated-\(n)", on: queue)) }
                var results: [Int] = []
                for handle in handles { results.append(try await handle.result()) }
                #expect(results == [1, 2, 3, 4, 5])
                // Each ran once, so its last claim is its admission, on the store's clock.
                var admitted: [Date] = []
                for n in 0..<5 { admitted.append(try #require(try await app.instance("rated-\(n)")?.lastClaimedAt)) }
                admitted.sort()
                for i in 0..<(admitted.count - 2) {
                    // The third admission of any period waits until the first has left it.
                    // In the store's whole milliseconds: one admitted exactly a period later is outside it.
                    let gap = Int((admitted[i + 2].timeIntervalSince(admitted[i]) * 1000).rounded())
                    #expect(gap >= 300, "admissions \(i) and \(i + 2) were \(gap) ms apart, within one 300 ms period")
                }
                #expect(try await app.instance("rated-0")?.queue == "rate_limited")
            }
        }
    }
}

@Suite("Queues: partitions", .timeLimit(.minutes(1)))
struct QueuePartitionTests {
    @Test(arguments: Backend.allCases)
    func aPartitionedQueueRunsOneAtATimePerKeyAndRefusesStartsThatDoNotFit(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let gate = Gate()
        let step = Activity("step") { (ctx, n: Int) -> Int in
            log.record("\(ctx.instanceID) started")
            await gate.wait()
            return n
        }
        let workflow = Workflow("per_key") { (ctx, n: Int) -> Int in try await step(ctx, n) }
        let perCustomer = Queue("per_customer", concurrency: 1, partitioned: true)
        let plain = Queue("plain", concurrency: 5)
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                app.register(perCustomer)
                app.register(plain)
                let handles = [
                    try await app.start(workflow, 1, instanceID: "acme-1", on: perCustomer, partitionKey: "acme"),
                    try await app.start(workflow, 2, instanceID: "acme-2", on: perCustomer, partitionKey: "acme"),
                    try await app.start(workflow, 3, instanceID: "bolt-1", on: perCustomer, partitionKey: "bolt"),
                ]
                try await waitUntil { log.all.contains("acme-1 started") && log.all.contains("bolt-1 started") }
                #expect(try await app.instance("acme-2")?.status == .queued, "acme's one place is taken; bolt's is its own")
                #expect(try await app.queuePosition(of: "acme-2") == 1)

                for (queue, key) in [(perCustomer, nil), (perCustomer, ""), (plain, "acme")] as [(Queue, String?)] {
                    do {
                        try await app.start(workflow, 9, instanceID: "misfit", on: queue, partitionKey: key)
                        Issue.record("a start on \(queue.name) with partition key \(key ?? "nil") was accepted")
                    } catch let error as EngineError {
                        #expect(error.code == .invalidQueueOptions, "\(error)")
                        #expect(error.description.contains(queue.name), "the message names the queue: \(error)")
                    }
                }
                #expect(try await app.instance("misfit") == nil)
                gate.open()
                var results: [Int] = []
                for handle in handles { results.append(try await handle.result()) }
                #expect(results == [1, 2, 3])
            }
        }
        #expect(log.all.firstIndex(of: "bolt-1 started")! < log.all.firstIndex(of: "acme-2 started")!)
    }
}

@Suite("Queues: child workflows", .timeLimit(.minutes(1)))
struct QueueChildTests {
    @Test(arguments: Backend.allCases)
    func childrenOnAQueueRunOneAtATimeAndACancelledParentCancelsItsQueuedChildren(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let gate = Gate()
        let running = Mutex((now: 0, most: 0))
        let work = Activity("work") { (ctx, n: Int) -> Int in
            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            defer { running.withLock { $0.now -= 1 } }
            log.record("\(ctx.instanceID) started")
            await gate.wait()
            return n * 10
        }
        let child = Workflow("queued_child") { (ctx, n: Int) -> Int in try await work(ctx, n) }
        let oneAtATime = Queue("children", concurrency: 1)
        let parent = Workflow("fan_out") { (ctx, count: Int) -> [Int] in
            var children: [ChildWorkflow<Int>] = []
            for n in 1...count { children.append(try await ctx.startChild(child, n, childID: "c\(n)", on: oneAtATime)) }
            var results: [Int] = []
            for started in children { results.append(try await started.result()) }
            return results
        }
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                app.register(oneAtATime)
                let handle = try await app.start(parent, 3, instanceID: "p")
                // One child takes the queue's one place; the other two wait, knowing their parent.
                try await waitUntil {
                    guard !log.all.isEmpty else { return false }
                    return try await app.instance("p/c3") != nil
                }
                var statuses: [InstanceStatus] = []
                for id in ["p/c1", "p/c2", "p/c3"] { statuses.append(try #require(try await app.instance(id)).status) }
                #expect(statuses.filter { $0 == .queued }.count == 2, "\(statuses)")
                #expect(try await app.instance("p/c3")?.parentInstanceID == "p", "a queued child knows its parent")
                gate.open()
                #expect(try await handle.result() == [10, 20, 30])
                #expect(running.withLock { $0.most } == 1, "the queue ran one child at a time")

                // A parent cancelled while its children wait in the queue: they are cancelled too, and run nothing.
                let blocked = Gate()
                let hold = Activity("hold") { (_: ActivityContext) -> Int in
                    await blocked.wait()
                    return 0
                }
                let holder = Workflow("holder") { (ctx: WorkflowContext) -> Int in try await hold(ctx) }
                let busy = try await app.start(holder, instanceID: "busy", on: oneAtATime)
                try await waitUntil { try await app.instance("busy")?.status == .running }
                _ = try await app.start(parent, 2, instanceID: "q")
                try await waitUntil { try await app.instance("q/c2")?.status == .queued }
                try await app.cancel("q")
                await #expect(throws: WorkflowCancelledError.self) { _ = try await app.handle(for: parent, instanceID: "q").result() }
                blocked.open()
                _ = try await busy.result()
                for id in ["q/c1", "q/c2"] {
                    try await waitUntil { try await app.instance(id)?.status == .cancelled }
                }
            }
        }
        #expect(!log.all.contains("q/c1 started") && !log.all.contains("q/c2 started"))
    }
}
