@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// Workflow and run timeouts: an instance past its deadline is cancelled as `cancel(_:)` cancels it
/// (compensations run), ends `cancelled`, and records which deadline passed.
///
/// Deadlines are on the database's clock, in real time: a test cannot skip to them. Each test tries
/// a short timeout first and, when the machine was too slow to reach what the test needs before the
/// deadline (a loaded runner), a longer one (``withGrowingTimeout(_:)``).
@Suite("Deadlines", .timeLimit(.minutes(1)))
struct DeadlineTests {
    enum Wait: Sendable {
        case step(Gate)
        case event
        case timer(Duration)
    }

    /// step_a (compensated), then `wait` — a step that waits for a gate, an event that never comes,
    /// a long timer — then step_c.
    static func workflow(
        _ name: String = "timed", log: ExecutionLog, timeout: Duration? = nil, runTimeout: Duration? = nil, wait: Wait
    ) -> Workflow<String, String> {
        let undo = Compensation("undo") { (ctx, result: String) in log.record("undo \(result)") }
        let stepA = Activity("step_a") { (ctx) -> String in
            log.record("a")
            return "a"
        }.onFailure(undo)
        let slow = Activity("slow") { (ctx) -> String in
            log.record("slow")
            if case .step(let gate) = wait { await gate.wait() }
            return "slow"
        }.onFailure(undo)
        let stepC = Activity("step_c") { (ctx) -> String in
            log.record("c")
            return "c"
        }
        return Workflow(name, timeout: timeout, runTimeout: runTimeout) { (ctx, input: String) -> String in
            _ = try await stepA(ctx)
            switch wait {
            case .step: _ = try await slow(ctx)
            case .event: _ = try await ctx.waitForEvent(type: "never.comes", as: String.self)
            case .timer(let duration): try await ctx.sleep(for: duration)
            }
            return try await stepC(ctx)
        }
    }

    /// Runs `attempt` with 100 ms, then longer timeouts while it returns `false`: the machine did not
    /// reach what the test needs before the deadline. An attempt checks that first and expects
    /// nothing until it has.
    func withGrowingTimeout(sourceLocation: SourceLocation = #_sourceLocation, _ attempt: (Duration) async throws -> Bool) async throws {
        for timeout in [Duration.milliseconds(100), .milliseconds(400), .milliseconds(1600), .milliseconds(6400)] {
            if try await attempt(timeout) { return }
        }
        Issue.record("never got ahead of the deadline, even at 6.4 s", sourceLocation: sourceLocation)
    }

    /// ``withGrowingTimeout(_:)`` with a store of `backend` and a fresh app running on it for each attempt.
    func withGrowingTimeout(
        on backend: Backend, configuration: EddaApp.Configuration = .testing, sourceLocation: SourceLocation = #_sourceLocation,
        _ attempt: @escaping @Sendable (Duration, any Store, EddaApp) async throws -> Bool
    ) async throws {
        // One store for all attempts (a PostgreSQL schema takes a while to set up on a loaded machine), a
        // fresh app for each; each attempt's instance IDs end in its timeout.
        try await backend.withStore { store in
            try await withGrowingTimeout(sourceLocation: sourceLocation) { timeout in
                try await withTestApp(store: store, configuration: configuration) { app in try await attempt(timeout, store, app) }
            }
        }
    }

    /// Waits until `condition` holds or the instance has finished; returns whether `condition` held
    /// (once is enough: a parked instance is claimed again at its deadline, and then no longer parked).
    func waitUntilOrFinished(_ instanceID: String, in store: any Store, _ condition: () async throws -> Bool) async throws -> Bool {
        var held = false
        try await waitUntil(timeout: .seconds(30)) {
            if try await condition() {
                held = true
                return true
            }
            return try await store.instance(instanceID)?.status.isTerminal ?? false
        }
        return held
    }

    /// Starts ``workflow(_:log:timeout:runTimeout:wait:)`` with `timeout`, as `<prefix>-<timeout in ms>`, with a log of its own.
    func start(_ prefix: String, _ wait: Wait, timeout: Duration, on app: EddaApp) async throws -> (id: String, log: ExecutionLog, handle: WorkflowHandle<String>) {
        let (id, log) = ("\(prefix)-\(timeout.milliseconds)", ExecutionLog())
        return (id, log, try await app.start(Self.workflow(log: log, timeout: timeout, wait: wait), "x", instanceID: id))
    }

    /// Waits until the instance's stored deadline has passed, and `slack` more: a run counts its
    /// deadline from the moment the store's answer reached it (never early), so on a loaded machine
    /// it passes there up to that answer's way back later than the stored one.
    func waitPastDeadline(of instanceID: String, in store: any Store, slack: Duration = .zero) async throws {
        let deadline = try #require(try await store.instance(instanceID)?.deadline)
        try await waitUntil { Date() > deadline.addingTimeInterval(0.01 + slack.seconds) }
    }

    /// A step outlives the workflow timeout (`"workflow"`) or the run timeout (`"run"`).
    @Test(arguments: Backend.allCases, ["workflow", "run"])
    func aWorkflowThatRunsPastItsTimeoutIsCancelledAndItsCompensationsRun(_ backend: Backend, _ which: String) async throws {
        try await withGrowingTimeout(on: backend) { timeout, store, app in
            let id = "d1-\(timeout.milliseconds)"
            let (log, gate) = (ExecutionLog(), Gate())
            defer { gate.open() }   // whatever happens: the app stops only once the step in progress returns
            let workflow = Self.workflow(
                log: log, timeout: which == "workflow" ? timeout : nil, runTimeout: which == "run" ? timeout : nil, wait: .step(gate)
            )
            let startedAt = ContinuousClock.now
            let handle = try await app.start(workflow, "x", instanceID: id)
            let startTook = ContinuousClock.now - startedAt
            guard try await waitUntilOrFinished(id, in: store, { log.all.contains("slow") }) else { return false }
            try await waitPastDeadline(of: id, in: store, slack: startTook)
            gate.open()   // the step in progress finishes and is recorded; the next one meets the deadline
            let error = await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            let kind: DeadlineExceeded.Kind = which == "workflow" ? .workflowTimeout : .runTimeout
            #expect(error?.deadlineExceeded?.kind == kind)
            #expect(error?.deadlineExceeded?.timeout == timeout)
            #expect(error?.reason?.hasPrefix("deadline exceeded: \(which) timeout \(timeout.milliseconds) ms passed at 20") == true)
            #expect(error?.message.contains("deadline exceeded") == true)
            #expect(log.all == ["a", "slow", "undo slow", "undo a"])
            let instance = try #require(try await store.instance(id))
            #expect(instance.status == .cancelled)
            #expect(instance.error?.deadlineExceeded?.kind == kind, "the reason is recorded with the instance")
            return true
        }
    }

    @Test(arguments: Backend.allCases)
    func anInstanceWaitingForAnEventThatNeverComesIsCancelledAtItsDeadline(_ backend: Backend) async throws {
        try await withGrowingTimeout(on: backend) { timeout, store, app in
            let (id, log, handle) = try await start("d2", .event, timeout: timeout, on: app)
            // Parked on the wait, released by its worker: only the stored deadline brings it back.
            guard try await waitUntilOrFinished(id, in: store, { try await store.instance(id)?.waitingFor?.kind == .event }) else {
                return false
            }
            let error = await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            let deadline = try #require(try await store.instance(id)?.deadline)
            #expect(error?.deadlineExceeded?.deadline == deadline)
            #expect(Date() >= deadline, "not cancelled before its deadline")
            #expect(log.all == ["a", "undo a"])
            #expect(try await store.instance(id)?.status == .cancelled)
            return true
        }
    }

    /// A day-long timer on a manual clock that never moves, slept in place: the run's own timer
    /// (real time) cuts it short.
    @Test(arguments: Backend.allCases)
    func anInstanceSleepingOnATimerIsCancelledAtItsDeadline(_ backend: Backend) async throws {
        var configuration = EddaApp.Configuration.testing
        configuration.clock = ManualClock()
        configuration.maxInMemoryWait = .seconds(86_400 * 2)
        try await withGrowingTimeout(on: backend, configuration: configuration) { timeout, store, app in
            let (_, log, handle) = try await start("d3", .timer(.seconds(86_400)), timeout: timeout, on: app)
            let error = await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            guard log.all.contains("a") else { return false }
            #expect(error?.deadlineExceeded?.kind == .workflowTimeout)
            #expect(log.all == ["a", "undo a"])
            return true
        }
    }

    @Test(arguments: Backend.allCases)
    func aChildInheritsItsParentsDeadlineWhenItIsEarlier(_ backend: Backend) async throws {
        try await withGrowingTimeout(on: backend) { timeout, store, app in
            let id = "d4-\(timeout.milliseconds)"
            let log = ExecutionLog()
            let child = Self.workflow("child", log: log, timeout: .seconds(3600), wait: .event)
            let parent = Workflow("parent", timeout: timeout) { (ctx, input: String) -> String in
                try await ctx.runChild(child, input)
            }
            let childID = "\(id)/edda.child:1"
            let handle = try await app.start(parent, "x", instanceID: id)
            await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            guard let stored = try await store.instance(childID), log.all.contains("a") else { return false }
            let parentDeadline = try #require(try await store.instance(id)?.deadline)
            #expect(stored.deadline == parentDeadline, "the earlier of its own (an hour) and its parent's")
            #expect(stored.workflowTimeout == .seconds(3600))
            #expect(stored.deadlineExceeded?.kind == .inherited)
            try await waitUntil { try await store.instance(childID)?.status == .cancelled }
            // Whichever noticed first: its own (inherited) deadline, or its parent's cancellation.
            #expect(try await store.instance(childID)?.error?.type == "WorkflowCancelledError")
            try await waitUntil { log.all.contains("undo a") }
            return true
        }
    }

    @Test(arguments: Backend.allCases)
    func aStartsTimeoutOverridesTheWorkflows(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let workflow = Self.workflow(log: log, timeout: .milliseconds(50), wait: .event)
        let other = Self.workflow("hour-long", log: log, timeout: .seconds(3600), wait: .event)
        try await backend.withStore { store in
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                // Longer than the workflow's: it outlives the workflow's 50 ms and completes.
                let long = try await app.start(workflow, "x", instanceID: "d5", timeout: .seconds(3600))
                try await waitUntil { try await store.instance("d5")?.waitingFor?.kind == .event }
                try await Task.sleep(for: .milliseconds(100))
                #expect(try await store.instance("d5")?.status == .running, "not cancelled at the workflow's 50 ms")
                #expect(try await app.sendEvent(CloudEvent(type: "never.comes", source: "/test", json: "now"), to: "d5"))
                #expect(try await long.result() == "c")
                // Shorter than the workflow's: cancelled at the start's.
                let short = try await app.start(other, "y", instanceID: "d6", timeout: .milliseconds(50))
                let error = await #expect(throws: WorkflowCancelledError.self) { try await short.result() }
                #expect(error?.deadlineExceeded?.timeout == .milliseconds(50))
            }
            #expect(try await store.instance("d5")?.workflowTimeout == .seconds(3600))
            #expect(try await store.instance("d6")?.workflowTimeout == .milliseconds(50))
        }
    }

    /// Each run takes a quarter of `timeout` and continues as new until `limit`.
    static func chain(_ name: String, timeout: Duration?, runTimeout: Duration?, tick: Duration) -> Workflow<Int, Int, Int> {
        let step = Activity("tick") { (ctx, n: Int) -> Int in
            try await Task.sleep(for: tick)
            return n
        }
        return Workflow(name, timeout: timeout, runTimeout: runTimeout) { (ctx, n: Int, limit: Int) -> Int in
            _ = try await step(ctx, n)
            if n < limit { try ctx.continueAsNew(with: n + 1, limit) }
            return n
        }
    }

    @Test(arguments: Backend.allCases)
    func aRunTimeoutStartsAgainWithEachContinueAsNewAndAWorkflowTimeoutDoesNot(_ backend: Backend) async throws {
        try await withGrowingTimeout(on: backend) { timeout, store, app in
            // Runs of a quarter of the timeout each: five of them outlast a run timeout in all but in
            // no one run; a workflow timeout stops the chain, however many runs it has had.
            let (perRun, whole) = ("d7-\(timeout.milliseconds)", "d8-\(timeout.milliseconds)")
            let started = ContinuousClock.now
            let stopped = try await app.start(Self.chain("whole", timeout: timeout, runTimeout: nil, tick: timeout / 4), 1, 1000, instanceID: whole)
            let chained = try await app.start(Self.chain("per-run", timeout: nil, runTimeout: timeout, tick: timeout / 4), 1, 5, instanceID: perRun)
            let error = await #expect(throws: WorkflowCancelledError.self) { try await stopped.result() }
            guard (try? await chained.result()) == 5, let cancelled = try await store.instance(whole), cancelled.runNumber > 1 else { return false }
            #expect(ContinuousClock.now - started > timeout, "the chain took longer than one run may")
            let completed = try #require(try await store.instance(perRun))
            #expect(completed.runNumber == 5)
            #expect(completed.runTimeout == timeout)
            #expect(error?.deadlineExceeded?.kind == .workflowTimeout)
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.workflowDeadline == cancelled.deadline)
            #expect(abs(try #require(cancelled.workflowDeadline).timeIntervalSince(cancelled.createdAt) - timeout.seconds) < 0.01)
            return true
        }
    }

    /// Started by a client with no worker; a worker comes after the deadline: it cancels the
    /// instance before its first step. And one parked on a wait by a worker that stopped is
    /// cancelled, compensations and all, by the next worker to start.
    @Test(arguments: Backend.allCases)
    func aDeadlineThatPassesWhileNoWorkerRunsIsHonouredWhenOneStarts(_ backend: Backend) async throws {
        try await withGrowingTimeout { timeout in
            let log = ExecutionLog()
            let parked = Self.workflow("parked", log: log, timeout: timeout, wait: .event)
            let unclaimed = Self.workflow("unclaimed", log: log, wait: .event)
            return try await backend.withStore { store in
                let client = EddaClient(store: store, serviceName: "test")
                _ = try await client.start(unclaimed, "x", instanceID: "unclaimed", timeout: .milliseconds(30))
                // A worker that runs only "parked": it parks on its wait, and the worker stops.
                let isParked = try await withTestApp(store: store) { (app: EddaApp) async throws -> Bool in
                    _ = try await app.start(parked, "y", instanceID: "parked")
                    return try await waitUntilOrFinished("parked", in: store) { try await store.instance("parked")?.waitingFor?.kind == .event }
                }
                guard isParked else { return false }
                try await waitPastDeadline(of: "parked", in: store)
                try await waitPastDeadline(of: "unclaimed", in: store)
                #expect(try await store.instance("unclaimed")?.status == .running, "nobody ran it")
                try await withTestApp(store: store) { (app: EddaApp) async throws in
                    try app.register(parked)
                    try app.register(unclaimed)
                    for (id, expected) in [("unclaimed", Duration.milliseconds(30)), ("parked", timeout)] {
                        let error = await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: parked, instanceID: id).result() }
                        #expect(error?.deadlineExceeded?.timeout == expected)
                    }
                }
                #expect(try await store.instance("unclaimed")?.status == .cancelled)
                #expect(try await store.instance("parked")?.status == .cancelled)
                #expect(log.all == ["a", "undo a"], "only the parked one ran a step, and its compensation ran")
                return true
            }
        }
    }

    /// Leased to a worker that died (its lease lapses on PostgreSQL; on SQLite the next worker to
    /// open the file frees it): the worker that takes it over cancels it before its first step.
    @Test(arguments: Backend.allCases)
    func anInstanceLeftByACrashedWorkerIsCancelledByTheWorkerThatTakesItOver(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let workflow = Self.workflow("orphan", log: log, wait: .event)
        try await backend.withStore { store in
            var new = NewInstance(instanceID: "orphan", workflowName: "orphan", serviceName: "test", input: JSONPayload(json: "[\"x\"]"))
            new.timeouts = InstanceTimeouts(workflow: .milliseconds(30))
            _ = try await store.createInstance(new, leasedTo: LeaseRequest(owner: "crashed-worker", duration: .milliseconds(30)))
            try await waitPastDeadline(of: "orphan", in: store)
            #expect(try await store.instance("orphan")?.leaseOwner == "crashed-worker")
            try await withTestApp(store: store) { (app: EddaApp) async throws in
                try app.register(workflow)
                let error = await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: workflow, instanceID: "orphan").result() }
                #expect(error?.deadlineExceeded?.timeout == .milliseconds(30))
            }
            #expect(log.all.isEmpty, "no step ran past the deadline")
            #expect(try await store.instance("orphan")?.status == .cancelled)
        }
    }

    @Test(arguments: [Duration.zero, .milliseconds(-5)])
    func aTimeoutThatIsNotPositiveIsRefusedAndNothingIsCreated(_ timeout: Duration) async throws {
        let workflow = Self.workflow(log: ExecutionLog(), wait: .event)
        try await withTestApp { (app: EddaApp) async throws in
            let error = await #expect(throws: EngineError.self) { try await app.start(workflow, "x", instanceID: "bad", timeout: timeout) }
            #expect(error?.code == .invalidInput)
            #expect(error?.message.contains("timeout must be longer than zero") == true)
            let run = await #expect(throws: EngineError.self) { try await app.start(workflow, "x", instanceID: "bad", runTimeout: timeout) }
            #expect(run?.message.contains("runTimeout") == true)
            #expect(try await app.instance("bad") == nil)
        }
    }

    @Test func aDeadlineReadsAsPeopleWriteIt() {
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(
            DeadlineExceeded(kind: .workflowTimeout, timeout: .seconds(30), deadline: at).description
                == "deadline exceeded: workflow timeout 30 s passed at 2027-01-15T08:00:00.000Z"
        )
        #expect(DeadlineExceeded(kind: .runTimeout, timeout: .milliseconds(1500), deadline: at).description.contains("run timeout 1500 ms"))
        #expect(DeadlineExceeded(kind: .runTimeout, timeout: .seconds(120), deadline: at).description.contains("run timeout 2 min"))
        #expect(DeadlineExceeded(kind: .inherited, timeout: nil, deadline: at, parentInstanceID: "p").description.contains("parent instance p"))
    }

    @Test func aDeadlineSurvivesTheErrorRecordsJSON() throws {
        let exceeded = DeadlineExceeded(kind: .runTimeout, timeout: .milliseconds(250), deadline: Date(timeIntervalSince1970: 1_800_000_000))
        let record = ErrorRecord(WorkflowCancelledError(instanceID: "i", deadlineExceeded: exceeded))
        let decoded = try JSONPayload.encode(record).decode(ErrorRecord.self)
        #expect(decoded.deadlineExceeded == exceeded)
        #expect(decoded == record)
        #expect(try JSONPayload.encode(ErrorRecord(type: "E", message: "m")).json.contains("deadline") == false, "absent when there is none")
    }
}
