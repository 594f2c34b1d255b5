import Edda
import EddaSQLite
import EddaTesting
import Foundation
import InMemoryTracing
import MetricsTestKit
import Synchronization
import Testing
import Tracing

/// Metrics (swift-metrics), spans (swift-distributed-tracing) and hooks, captured by in-memory
/// backends passed through the configuration (no global bootstrap, so tests run in parallel).
@Suite("Observability: metrics, traces and hooks", .timeLimit(.minutes(1)))
struct ObservabilityTests {
    static let flakyCalls = Atomic<Int>(0)

    func configuration(metrics: TestMetrics? = nil, tracer: InMemoryTracer? = nil, hooks: [any EddaHooks] = []) -> EddaApp.Configuration {
        var configuration = EddaApp.Configuration.testing
        configuration.metricsFactory = metrics
        configuration.tracer = tracer
        configuration.hooks = hooks
        configuration.defaultRetryPolicy = RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(1))
        return configuration
    }

    @Test func countersAndTimersAreNamedAndCountedOnceAndReplayedStepsAreNotExecuted() async throws {
        let metrics = TestMetrics()
        let calls = Atomic<Int>(0)
        let stepA = Activity("a") { (_: ActivityContext, n: Int) -> Int in n + 1 }
        let flaky = Activity("flaky") { (_: ActivityContext, n: Int) -> Int in
            if calls.add(1, ordering: .relaxed).newValue == 1 { throw URLError(.timedOut) }
            return n * 2
        }
        let fail = Activity("fail", retry: .noRetry) { (_: ActivityContext) -> Int in throw TerminalError("no") }
        let good = Workflow("metered") { (ctx: WorkflowContext, n: Int) -> Int in try await flaky(ctx, try await stepA(ctx, n)) }
        let bad = Workflow("metered_bad") { (ctx: WorkflowContext) -> Int in try await fail(ctx) }
        let store = try SQLiteStore.inMemory()
        // An instance whose first step is already recorded: it replays, it does not execute.
        try await store.seedInstance("resumed", workflowName: "metered", input: try JSONPayload.encode([10]), history: [
            HistoryEvent(instanceID: "resumed", stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "11")),
        ])
        try await withTestApp(store: store, configuration: configuration(metrics: metrics)) { app in
            try app.register(good)
            #expect(try await app.start(good, 1).result() == 4)
            #expect(try await app.handle(for: good, instanceID: "resumed").result() == 22)
            await #expect(throws: WorkflowFailedError.self) { try await app.start(bad).result() }
        }
        func count(_ label: String, _ workflow: String) throws -> Int64 {
            try metrics.expectCounter(label, [("workflow", workflow)]).totalValue
        }
        #expect(try count("edda_instances_started_total", "metered") == 1, "the seeded instance was not started by this app")
        #expect(try count("edda_instances_completed_total", "metered") == 2)
        #expect(try count("edda_instances_failed_total", "metered_bad") == 1)
        #expect(try count("edda_steps_executed_total", "metered") == 3, "a:1 and flaky:1 fresh, and the resumed flaky:1; not the replayed a:1")
        #expect(try count("edda_steps_replayed_total", "metered") == 1)
        #expect(try count("edda_attempts_retried_total", "metered") == 1)
        #expect(try metrics.expectTimer("edda_step_duration_seconds", [("workflow", "metered")]).values.count == 4, "one per attempt")
        #expect(try metrics.expectTimer("edda_workflow_duration_seconds", [("workflow", "metered")]).values.count == 2)
        #expect(try metrics.expectTimer("edda_start_to_first_step_seconds", [("workflow", "metered")]).values.count == 1)
        #expect(try metrics.expectTimer("edda_claim_to_run_seconds").values.count >= 1)
        #expect(try metrics.expectGauge("edda_instances_in_flight").lastValue == 0)
    }

    @Test func theWaitingGaugeCountsInstancesReleasedToWait() async throws {
        let metrics = TestMetrics()
        let waiter = Workflow("gauged_waiter") { (ctx: WorkflowContext, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }
        var configuration = configuration(metrics: metrics)
        configuration.leaseRenewalInterval = .milliseconds(20)
        try await withTestApp(configuration: configuration) { app in
            let handle = try await app.start(waiter, 0)
            try await waitUntil { (try? metrics.expectGauge("edda_instances_waiting").lastValue) == 1 }
            _ = try await app.sendEvent(try CloudEvent(type: "go", source: "/test", json: 7))
            #expect(try await handle.result() == 7)
            try await waitUntil { (try? metrics.expectGauge("edda_instances_waiting").lastValue) == 0 }
        }
    }

    @Test func aRunIsASpanInTheCallersTraceWithAChildSpanPerAttempt() async throws {
        let tracer = InMemoryTracer()
        let stepA = Activity("a") { (_: ActivityContext, n: Int) -> Int in n + 1 }
        let workflow = Workflow("traced") { (ctx: WorkflowContext, n: Int) -> Int in
            let first = try await stepA(ctx, n)
            return try await stepA(ctx, first)
        }
        let callerTrace = try await withTestApp(configuration: configuration(tracer: tracer)) { app in
            try await tracer.withSpan("caller") { span in
                _ = try await app.start(workflow, 1).result()
                return span.context.inMemorySpanContext?.traceID
            }
        }
        let spans = tracer.finishedSpans
        let run = try #require(spans.first { $0.operationName == "edda.workflow traced" })
        #expect(run.traceID == callerTrace, "the run joins the trace of the code that started it")
        #expect(run.attributes.get("edda.workflow.name") == .string("traced"))
        let attempts = spans.filter { $0.operationName == "edda.activity a" }
        #expect(attempts.count == 2)
        #expect(attempts.allSatisfy { $0.parentSpanID == run.spanID && $0.traceID == run.traceID })
        #expect(attempts.map { $0.attributes.get("edda.step.id") } == [.string("a:1"), .string("a:2")])
    }

    @Test func aChildWorkflowsRunsJoinItsParentsTrace() async throws {
        let tracer = InMemoryTracer()
        let metrics = TestMetrics()
        let child = Workflow("traced_child") { (_: WorkflowContext, n: Int) -> Int in n * 2 }
        let parent = Workflow("traced_parent") { (ctx: WorkflowContext, n: Int) -> Int in try await ctx.runChild(child, n) }
        let result = try await withTestApp(configuration: configuration(metrics: metrics, tracer: tracer)) { app in
            try await app.start(parent, 4).result()
        }
        #expect(result == 8)
        let spans = tracer.finishedSpans
        let parentRuns = spans.filter { $0.operationName == "edda.workflow traced_parent" }
        let childRun = try #require(spans.first { $0.operationName == "edda.workflow traced_child" })
        #expect(parentRuns.contains { $0.traceID == childRun.traceID }, "the child's run is in its parent's trace")
        #expect(try metrics.expectCounter("edda_instances_started_total", [("workflow", "traced_child")]).totalValue == 1)
    }

    @Test func aRunOnAnotherWorkerLinksBackThroughTheStoredTraceContextAndEventsCarryIt() async throws {
        let tracer = InMemoryTracer()
        let notify = Activity("notify") { (ctx: ActivityContext, n: Int) -> Int in
            try ctx.enqueue(CloudEvent(type: "order.done", source: "/orders"))
            return n
        }
        let workflow = Workflow("handed_over") { (ctx: WorkflowContext, n: Int) -> Int in try await notify(ctx, n) }
        try await withTemporaryDatabase { path in
            // An app that does not run starts the instance inside a span: only the store carries it on.
            let starter = EddaApp(store: try SQLiteStore(path: path), serviceName: "test", configuration: configuration(tracer: tracer))
            let callerTrace = try await tracer.withSpan("caller") { span in
                _ = try await starter.start(workflow, 5, instanceID: "h-1")
                return span.context.inMemorySpanContext?.traceID
            }
            let stored = try await starter.instance("h-1")?.traceContext
            #expect(stored?[InMemoryTracer.traceIDKey] == callerTrace)

            let otherTracer = InMemoryTracer()
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store, configuration: configuration(tracer: otherTracer)) { app in
                try app.register(workflow)
                #expect(try await app.handle(for: workflow, instanceID: "h-1").result() == 5)
            }
            let run = try #require(otherTracer.finishedSpans.first { $0.operationName == "edda.workflow handed_over" })
            #expect(run.traceID == callerTrace, "a run on another worker, in another app, links back")
            let event = try #require(try await store.outboxEvents(status: nil, limit: 1).first)
            #expect(event.event.extensions["inmemorytraceid"] == callerTrace, "the outbox event carries the trace: \(event.event.extensions)")
        }
    }

    @Test func aReceivedCloudEventsTraceContextIsItsHandlersOwn() async throws {
        let tracer = InMemoryTracer()
        let handle = Workflow("on_order") { (_: WorkflowContext, n: Int) -> Int in n }
        try await withTestApp(configuration: configuration(tracer: tracer)) { app in
            try app.startOnEvent("order.created", handle)
            var event = try CloudEvent(type: "order.created", source: "/shop", json: 3)
            event.extensions = ["inmemorytraceid": "trace-from-sender", "inmemoryspanid": "span-from-sender"]
            let receipt = try await app.ingest(event)
            let id = try #require(receipt.started.first)
            #expect(try await app.handle(for: handle, instanceID: id).result() == 3)
        }
        let run = try #require(tracer.finishedSpans.first { $0.operationName == "edda.workflow on_order" })
        #expect(run.traceID == "trace-from-sender" && run.parentSpanID == "span-from-sender")
    }

    final class RecordingHooks: EddaHooks {
        let events = Mutex<[String]>([])
        func record(_ text: String) { events.withLock { $0.append(text) } }
        func workflowStarted(_ workflow: WorkflowHookEvent) async { record("started \(workflow.instanceID)") }
        func workflowCompleted(_ workflow: WorkflowHookEvent) async { record("completed \(workflow.instanceID)") }
        func workflowFailed(_ workflow: WorkflowHookEvent, error: ErrorRecord) async { record("failed \(workflow.instanceID) \(error.type)") }
        func activityStarted(_ activity: ActivityHookEvent) async { record("activity started \(activity.stepID) #\(activity.attempt)") }
        func activityCompleted(_ activity: ActivityHookEvent, fromHistory: Bool) async {
            record("activity completed \(activity.stepID)\(fromHistory ? " from history" : "")")
        }
        func activityRetrying(_ activity: ActivityHookEvent, error: ErrorRecord, delay: Duration) async { record("retrying \(activity.stepID)") }
        func activityFailed(_ activity: ActivityHookEvent, error: ErrorRecord) async { record("activity failed \(activity.stepID)") }
    }

    @Test func anAppWithHooksThatCannotRunStillReturns() async throws {
        try await withTemporaryDatabase { path in
            _ = try SQLiteStore(path: path)
            // A read-only store refuses a worker at once, before the hook task may have started.
            let app = EddaApp(
                store: try SQLiteStore(readingAt: path), serviceName: "test", configuration: configuration(hooks: [RecordingHooks()]), logger: .quiet
            )
            let error = await #expect(throws: StoreError.self) { try await app.run() }
            #expect(error?.code == .notWritable)
        }
    }

    /// A hook that holds up every event until the test opens it.
    final class GatedHooks: EddaHooks {
        private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

        func open() {
            let waiting = state.withLock { state in
                state.open = true
                defer { state.waiting = [] }
                return state.waiting
            }
            waiting.forEach { $0.resume() }
        }

        func workflowStarted(_ workflow: WorkflowHookEvent) async {
            await withCheckedContinuation { continuation in
                let open = state.withLock { state -> Bool in
                    if !state.open { state.waiting.append(continuation) }
                    return state.open
                }
                if open { continuation.resume() }
            }
        }
    }

    @Test func hooksHearEveryStepInOrderAndAStuckHookDoesNotHoldUpTheEngine() async throws {
        let hooks = RecordingHooks()
        let calls = Atomic<Int>(0)
        let flaky = Activity("flaky") { (_: ActivityContext) -> Int in
            if calls.add(1, ordering: .relaxed).newValue == 1 { throw URLError(.timedOut) }
            return 1
        }
        let fail = Activity("fail", retry: .noRetry) { (_: ActivityContext) -> Int in throw TerminalError("no") }
        let good = Workflow("hooked") { (ctx: WorkflowContext) -> Int in try await flaky(ctx) }
        let bad = Workflow("hooked_bad") { (ctx: WorkflowContext) -> Int in try await fail(ctx) }
        let store = try SQLiteStore.inMemory()
        try await store.seedInstance("again", workflowName: "hooked", history: [
            HistoryEvent(instanceID: "again", stepID: "flaky:1", position: 1, name: "flaky", kind: .activityCompleted, payload: JSONPayload(json: "1")),
        ])
        let gate = GatedHooks()
        try await withTestApp(store: store, configuration: configuration(hooks: [gate, hooks])) { app in
            try app.register(good)
            // The first hook holds every event up: the workflows still run to their end.
            _ = try await app.start(good, instanceID: "g").result()
            await #expect(throws: WorkflowFailedError.self) { try await app.start(bad, instanceID: "b").result() }
            _ = try await app.handle(for: good, instanceID: "again").result()
            #expect(hooks.events.withLock { $0 }.isEmpty, "the hooks lag behind; the engine did not wait for them")
            gate.open()
        }
        // run() returned: every queued event was delivered.
        let events = hooks.events.withLock { $0 }
        #expect(events.contains("activity completed flaky:1 from history"), "\(events)")
        #expect(events.contains("failed b TerminalError") && events.contains("activity failed fail:1"), "\(events)")
        let g = events.filter { $0.hasSuffix(" g") || ($0.contains("flaky:1") && !$0.contains("from history")) }
        #expect(g == ["started g", "activity started flaky:1 #1", "retrying flaky:1", "activity started flaky:1 #2", "activity completed flaky:1", "completed g"], "\(g)")
    }
}
