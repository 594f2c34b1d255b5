@testable import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

/// The life of one run, end to end: continue-as-new in place, a task left running by a finished
/// run, a failed release, and released waits on the app's clock.
@Suite("Run lifecycle", .timeLimit(.minutes(1)))
struct RunLifecycleTests {
    static let count = ContinueAsNewTests.count
    static let counter = ContinueAsNewTests.counter

    @Test(arguments: Backend.allCases)
    func continueAsNewRunsInPlaceWithoutReleasingOrReclaiming(_ backend: Backend) async throws {
        try await backend.withStore { base in
            let store = FaultyStore(base)
            let result = try await withTestApp(store: store) { app in
                try await app.start(Self.counter, 1, 4, instanceID: "chain").result()
            }
            #expect(result == 400)
            // Released only... never: each continuation ran at once under the same lease, its token moved
            // on (three continuations after the creation's token 1).
            #expect(store.releasesAsked == 0, "a continuation released the instance")
            let instance = try #require(try await store.instance("chain"))
            #expect(instance.runNumber == 4)
            #expect(instance.status == .completed)
        }
    }

    /// A start whose insert committed but whose answer was lost (a statement timeout) is tried again
    /// with the same generated ID: one instance, run here, not two.
    @Test(arguments: Backend.allCases)
    func aStartWhoseAnswerWasLostCreatesOneInstanceAndRunsIt(_ backend: Backend) async throws {
        let double = Workflow("double_once") { (ctx, n: Int) -> Int in n * 2 }
        try await backend.withStore { base in
            let store = FaultyStore(base)
            store.lostCreateAnswers.withLock { $0 = 1 }
            let result = try await withTestApp(store: store) { app in
                try await app.start(double, 21).result()
            }
            #expect(result == 42)
            let instances = try await store.instances(matching: InstanceQuery(workflowName: "double_once")).instances
            #expect(instances.count == 1, "a second instance was created: \(instances.map(\.instanceID))")
            #expect(instances.first?.status == .completed)
        }
    }

    /// A claim whose answer was lost leased instances to a worker that does not know it holds them;
    /// its next claim takes them back, long before their lease (30 s here; never, on SQLite) lapses.
    @Test(arguments: Backend.allCases)
    func aClaimWhoseAnswerWasLostIsTakenBackByTheNextClaim(_ backend: Backend) async throws {
        let double = Workflow("double_claimed") { (ctx, n: Int) -> Int in n * 2 }
        try await backend.withStore { base in
            let store = FaultyStore(base, leasesNewInstances: false)
            store.lostClaimAnswers.withLock { $0 = 1 }
            var configuration = EddaApp.Configuration.testing
            configuration.leaseDuration = .seconds(30)
            configuration.leaseRenewalInterval = .seconds(10)
            let started = ContinuousClock.now
            let result = try await withTestApp(store: store, configuration: configuration) { app in
                try await app.start(double, 21).result()
            }
            #expect(result == 42)
            #expect(ContinuousClock.now - started < .seconds(20), "it waited for the lease to lapse")
            #expect(store.lostClaimAnswers.withLock { $0 } == 0, "no claim answer was lost: the test tested nothing")
        }
    }

    @Test(arguments: Backend.allCases)
    func aTaskLeftRunningByAFinishedRunCannotWriteIntoTheNextRun(_ backend: Backend) async throws {
        let bodyStarted = Gate()
        let finish = Gate()
        let strayDone = Gate()
        let log = ExecutionLog()
        let stray = Activity("stray", retry: .noRetry) { (ctx) -> Int in
            bodyStarted.open()
            await finish.wait()
            log.record("stray body returned")
            return 99
        }
        let leaver = Workflow("leaves_a_task") { (ctx, n: Int) -> Int in
            if ctx.runNumber == 1 {
                // A task the workflow does not await: it outlives the run.
                Task {
                    do {
                        _ = try await stray(ctx, activityID: "stray")
                        log.record("stray recorded")
                    } catch {
                        log.record("stray refused")
                    }
                    strayDone.open()
                }
                await bodyStarted.wait()
                try ctx.continueAsNew(with: n + 1)
            }
            finish.open()
            await strayDone.wait()
            return try await Self.count(ctx, n)
        }
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(leaver, 1, instanceID: "leaver").result()
            }
            #expect(result == 2)
            #expect(log.all == ["stray body returned", "stray refused"])
            #expect(try await store.history(of: "leaver").map(\.stepID) == ["count:1"], "the old run's step landed in the new run")
        }
    }

    @Test(arguments: Backend.allCases)
    func aFailedReleaseIsTriedAgainSoTheInstanceResumes(_ backend: Backend) async throws {
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        // Every release fails twice (SQLITE_BUSY past busyTimeout while the CLI writes, say).
        try await backend.withStore { base in
            let store = FaultyStore(base, failingReleases: 2)
            let napper = Workflow("napper") { (ctx, n: Int) -> Int in
                let before = try await Self.count(ctx, n)
                try await ctx.sleep(for: .seconds(30))   // released: longer than maxInMemoryWait
                return before + (try await Self.count(ctx, n + 1))
            }
            let result = try await withTestApp(store: store, configuration: configuration) { app in
                let handle = try await app.start(napper, 1, instanceID: "nap")
                let wait = await clock.nextSleep()
                #expect(wait == .seconds(30))
                clock.advance(by: wait)
                return try await handle.result()
            }
            #expect(result == 3)
            #expect(store.releasesAsked >= 3)
        }
    }

    /// The README's recipe, as written: a manual clock walks an activity's whole backoff, 1, 2, 4 and
    /// 8 seconds, without sleeping — the last two are longer than `maxInMemoryWait`, so the instance
    /// is released in between and the worker wakes for it on the app's clock.
    @Test(arguments: Backend.allCases)
    func theManualClockRecipeWalksTheWholeBackoff(_ backend: Backend) async throws {
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.defaultRetryPolicy = .default
        struct Flaky: Error {}
        let flaky = Activity("flaky") { (ctx) -> Int in
            if ctx.attempt < 5 { throw Flaky() }
            return ctx.attempt
        }
        let workflow = Workflow("flaky_workflow") { (ctx) -> Int in try await flaky(ctx) }
        let (waits, result) = try await backend.withTestApp(configuration: configuration) { app in
            let handle = try await app.start(workflow, instanceID: "flaky")
            var waits: [Duration] = []
            for _ in 0..<4 {
                let wait = await clock.nextSleep()
                waits.append(wait)
                clock.advance(by: wait)
            }
            return (waits, try await handle.result())
        }
        #expect(waits == [.seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        #expect(result == 5)
    }
}
