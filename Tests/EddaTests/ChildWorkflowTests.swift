import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `ctx.startChild` / `ctx.runChild`: deterministic child IDs, typed results, cancellation with the parent.
@Suite("Child workflows", .timeLimit(.minutes(1)))
struct ChildWorkflowTests {
    static let double = Workflow("double") { (ctx, n: Int) -> Int in
        guard n >= 0 else { throw TerminalError("negative input \(n)") }
        return n * 2
    }

    /// Waits for a "go" event, so the test decides when it finishes.
    static let gated = Workflow("gated") { (ctx, n: Int) -> Int in
        _ = try await ctx.waitForEvent(type: "go", as: Int.self)
        return n + 1
    }

    static let parent = Workflow("parent") { (ctx, n: Int) -> String in
        let doubled = try await ctx.runChild(double, n)
        do {
            _ = try await ctx.runChild(double, -1)
            return "unexpected"
        } catch let failed as WorkflowFailedError {
            return "\(doubled); child failed: \(failed.error.message)"
        }
    }

    static let waitingParent = Workflow("waiting_parent") { (ctx, n: Int) -> Int in
        let child = try await ctx.startChild(gated, n, childID: "gate")
        return try await child.result() * 10
    }

    @Test(arguments: Backend.allCases)
    func aParentAwaitsItsChildrensTypedResultsAndFailures(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(Self.parent, 21, instanceID: "p-1").result()
            }
            #expect(result == "42; child failed: negative input -1")
            let child = try #require(try await store.instance("p-1/edda.child:1"))
            #expect(child.parentInstanceID == "p-1")
            #expect(child.status == .completed)
            #expect(try await store.instance("p-1/edda.child:2")?.status == .failed)
            let history = try await store.history(of: "p-1")
            #expect(history.map(\.kind) == [.childStarted, .messageReceived, .childStarted, .messageReceived])
            #expect(history.map(\.stepID) == ["edda.child:1", "edda.child:1/result", "edda.child:2", "edda.child:2/result"])
        }
    }

    @Test(arguments: Backend.allCases)
    func aReplayedParentDoesNotStartASecondChildAndResumesOnItsResult(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.waitingParent, 4, instanceID: "wp")
                try await waitUntil { try await store.instance("wp/gate")?.readyAt != nil }
            }
            // A new app: the parent replays its start, the child is the same instance.
            let result = try await withTestApp(store: store) { app in
                try app.register(Self.waitingParent)
                try app.register(Self.gated)
                try await waitUntil { try await app.sendEvent(try CloudEvent(type: "go", source: "/test", json: 1), to: "wp/gate") }
                return try await app.handle(for: Self.waitingParent, instanceID: "wp").result()
            }
            #expect(result == 50)
            let children = try await store.instances(matching: InstanceQuery(workflowName: "gated", limit: 10)).instances
            #expect(children.map(\.instanceID) == ["wp/gate"], "exactly one child")
        }
    }

    static let looping = Workflow("looping_parent") { (ctx, n: Int) -> Int in
        let doubled = try await ctx.runChild(double, n)
        if n < 3 { try ctx.continueAsNew(with: n + 1) }
        return doubled
    }

    @Test(arguments: Backend.allCases)
    func eachRunOfAContinueAsNewChainStartsChildrenOfItsOwn(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(Self.looping, 1, instanceID: "lp").result()
            }
            #expect(result == 6)
            for (id, output) in [("lp/edda.child:1", "2"), ("lp/run2/edda.child:1", "4"), ("lp/run3/edda.child:1", "6")] {
                let child = try #require(try await store.instance(id), "no child \(id)")
                #expect(child.output?.json == output)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func cancellingTheParentCancelsItsChildren(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                let handle = try await app.start(Self.waitingParent, 1, instanceID: "cp")
                try await waitUntil {
                    let (child, parent) = (try await store.instance("cp/gate"), try await store.instance("cp"))
                    return child?.readyAt != nil && parent?.readyAt != nil
                }
                try await app.cancel("cp")
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
                await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: Self.gated, instanceID: "cp/gate").result() }
            }
            #expect(try await store.instance("cp/gate")?.status == .cancelled)
        }
    }

    /// Another process cancels the parent while a step runs; the parent's worker hears of it only
    /// at its next lease renewal (an hour here), so the parent goes on and starts a child: the child
    /// is born cancelled, and never runs a step.
    @Test(arguments: Backend.allCases)
    func aChildStartedAfterItsParentWasCancelledElsewhereIsBornCancelled(_ backend: Backend) async throws {
        let gate = Gate()
        let log = ExecutionLog()
        let step = Activity("child_step") { (ctx) -> Int in
            log.record("child ran")
            return 1
        }
        let child = Workflow("late_child") { (ctx, n: Int) -> Int in try await step(ctx) + n }
        let hold = Activity("hold") { (ctx) -> Int in
            log.record("holding")
            await gate.wait()
            return 1
        }
        let parent = Workflow("late_parent") { (ctx, n: Int) -> Int in
            _ = try await hold(ctx)
            return try await ctx.runChild(child, n, childID: "late")
        }
        var configuration = EddaApp.Configuration.testing
        configuration.leaseDuration = .seconds(7200)
        configuration.leaseRenewalInterval = .seconds(3600)
        // One run at a time: the child is claimed only once the parent waits for it. (The other
        // order, the child finishing first, is the next test's.)
        configuration.maxConcurrentInstances = 1
        try await backend.withDatabase { database in
            // Another process asks; this app's worker is not told (on PostgreSQL, NOTIFY would tell it: deaf here).
            let store = FaultyStore(try await database.open(), hearsCancellations: false)
            let elsewhere = try await database.open()
            try await withTestApp(store: store, configuration: configuration) { app in
                let handle = try await app.start(parent, 3, instanceID: "lp")
                try await waitUntil { log.all.contains("holding") }
                guard case .requested = try await elsewhere.requestCancellation(of: "lp") else {
                    Issue.record("the parent was not marked")
                    return
                }
                gate.open()
                try await waitUntil { try await store.instance("lp/late") != nil }
                await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: child, instanceID: "lp/late").result() }
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(log.count("child ran") == 0)
            #expect(try await store.instance("lp/late")?.status == .cancelled)
            #expect(try await store.instance("lp")?.status == .cancelled)
        }
    }

    /// As above, but the born-cancelled child has finished before the parent, still unaware of its
    /// own cancellation, awaits it: the parent meets the child's cancellation first, and still ends
    /// cancelled, not failed (it asks the store whether it was asked to cancel).
    @Test(arguments: Backend.allCases)
    func aParentThatMeetsItsCancelledChildFirstStillEndsCancelled(_ backend: Backend) async throws {
        let gate = Gate()
        let childFinished = Gate()
        let childStep = Activity("early_child_step") { (ctx, n: Int) -> Int in n }
        // A step: a cancellation is met at a step boundary.
        let child = Workflow("early_child") { (ctx, n: Int) -> Int in try await childStep(ctx, n) }
        let log = ExecutionLog()
        let hold = Activity("hold_early") { (ctx) -> Int in
            log.record("holding")
            await gate.wait()
            return 1
        }
        let holdAgain = Activity("hold_until_the_child_ended") { (ctx) -> Int in
            await childFinished.wait()
            return 1
        }
        let parent = Workflow("early_parent") { (ctx, n: Int) -> Int in
            _ = try await hold(ctx)
            let started = try await ctx.startChild(child, n, childID: "early")
            // The child ends (cancelled) while the parent, deaf to its own cancellation, waits here.
            _ = try await holdAgain(ctx)
            return try await started.result()
        }
        var configuration = EddaApp.Configuration.testing
        configuration.leaseDuration = .seconds(7200)
        configuration.leaseRenewalInterval = .seconds(3600)
        try await backend.withDatabase { database in
            let store = FaultyStore(try await database.open(), hearsCancellations: false)
            let elsewhere = try await database.open()
            try await withTestApp(store: store, configuration: configuration) { app in
                try app.register(child)
                let handle = try await app.start(parent, 3, instanceID: "ep")
                // The parent runs its first step, then is asked to cancel from elsewhere.
                try await waitUntil { log.all.contains("holding") }
                guard case .requested = try await elsewhere.requestCancellation(of: "ep") else {
                    Issue.record("the parent was not marked")
                    return
                }
                gate.open()
                try await waitUntil { try await store.instance("ep/early")?.status == .cancelled }
                childFinished.open()
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
            }
            #expect(try await store.instance("ep")?.status == .cancelled)
        }
    }

    /// Starts a child, waits for a "resume" event, then awaits the child.
    static let resumingParent = Workflow("resuming_parent") { (ctx, n: Int) -> Int in
        let child = try await ctx.startChild(gated, n, childID: "gate")
        _ = try await ctx.waitForEvent(type: "resume", as: Int.self)
        return try await child.result() * 10
    }

    /// After a restart, an app that registered only the parent resumes it: the replay of the
    /// recorded start registers the child's workflow, so this app's worker runs the child too.
    @Test(arguments: Backend.allCases)
    func aParentResumedAfterARestartRegistersTheChildItStartedBefore(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.resumingParent, 2, instanceID: "rp")
                try await waitUntil {
                    let (child, parent) = (try await store.instance("rp/gate"), try await store.instance("rp"))
                    return child?.readyAt != nil && parent?.readyAt != nil
                }
            }
            let result = try await withTestApp(store: store) { app -> Int? in
                try app.register(Self.resumingParent)   // not `gated`
                try await waitUntil { try await app.sendEvent(try CloudEvent(type: "resume", source: "/test", json: 0), to: "rp") }
                try await waitUntil(timeout: .seconds(5)) { app.registeredWorkflowNames.contains(Self.gated.name) }
                guard app.registeredWorkflowNames.contains(Self.gated.name) else { return nil }   // the child would never run here
                try await waitUntil { try await app.sendEvent(try CloudEvent(type: "go", source: "/test", json: 1), to: "rp/gate") }
                return try await app.handle(for: Self.resumingParent, instanceID: "rp").result()
            }
            #expect(result == 30)
            #expect(try await store.instance("rp/gate")?.status == .completed)
        }
    }
}
