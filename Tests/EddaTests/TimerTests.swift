import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// Durable timers: `ctx.sleep(for:)` and `ctx.sleep(until:)` on the app's clock.
@Suite("Durable timers")
struct TimerTests {
    let log = ExecutionLog()

    func workflow(sleeping duration: Duration) -> Workflow<String, String> {
        let log = self.log
        let before = Activity("before", retry: .noRetry) { (ctx, name: String) -> String in
            log.record("before")
            return name
        }
        let after = Activity("after", retry: .noRetry) { (ctx, name: String) -> String in
            log.record("after")
            return "done \(name)"
        }
        return Workflow("sleepy") { (ctx, name: String) -> String in
            _ = try await before(ctx, name)
            try await ctx.sleep(for: duration)
            return try await after(ctx, name)
        }
    }

    func configuration(_ clock: ManualClock, inMemory: Duration) -> EddaApp.Configuration {
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.maxInMemoryWait = inMemory
        return configuration
    }

    @Test(arguments: Backend.allCases)
    func aLongSleepReleasesTheInstanceAndFiresAtItsDeadline(_ backend: Backend) async throws {
        let clock = ManualClock()
        let started = clock.now()
        let workflow = self.workflow(sleeping: .seconds(3600))
        try await backend.withStore { store in
            let result = try await withTestApp(store: store, configuration: configuration(clock, inMemory: .seconds(2))) { app in
                let handle = try await app.start(workflow, "a", instanceID: "t1")
                // The run ended as waiting: no lease, no run in memory, ready at the deadline.
                try await waitUntil { try await store.instance("t1")?.readyAt != nil }
                let waiting = try #require(try await store.instance("t1"))
                #expect(waiting.status == .running)
                #expect(waiting.leaseOwner == nil)
                #expect(waiting.readyAt == started.addingTimeInterval(3600))
                // The run leaves the worker's set just after its release commits.
                try await waitUntil { app.instancesRunningHere.isEmpty }
                clock.advance(by: .seconds(3599))
                try await Task.sleep(for: .milliseconds(150))   // three polls: still not due
                #expect(try await store.instance("t1")?.status == .running)
                clock.advance(by: .seconds(1))
                return try await handle.result()
            }
            #expect(result == "done a")
            #expect(log.all == ["before", "after"], "the step before the timer did not run again")
            let history = try await store.history(of: "t1")
            #expect(history.map(\.stepID) == ["before:1", "edda.sleep:1", "after:1"])
            #expect(history[1].kind == .timerScheduled)
        }
    }

    @Test(arguments: Backend.allCases)
    func theDeadlineIsFixedByTheFirstRunAndSurvivesARestart(_ backend: Backend) async throws {
        let clock = ManualClock()
        let started = clock.now()
        let workflow = self.workflow(sleeping: .seconds(600))
        try await backend.withDatabase { database in
            try await withTestApp(store: try await database.open(), configuration: configuration(clock, inMemory: .zero)) { app in
                try await app.start(workflow, "b", instanceID: "t2")
                try await waitUntil {
                    let recorded = try await app.history(of: "t2").count
                    return app.instancesRunningHere.isEmpty && recorded == 2
                }
            }
            // A new process, 5 minutes later: it replays, and the timer keeps its recorded deadline.
            clock.advance(by: .seconds(300))
            let store = try await database.open()
            let result = try await withTestApp(store: store, configuration: configuration(clock, inMemory: .zero)) { app in
                try app.register(workflow)
                try await waitUntil { try await store.instance("t2")?.readyAt == started.addingTimeInterval(600) }
                clock.advance(by: .seconds(300))
                return try await app.handle(for: workflow, instanceID: "t2").result()
            }
            #expect(result == "done b")
            #expect(try await store.history(of: "t2").filter { $0.kind == .timerScheduled }.count == 1)
        }
        #expect(log.all == ["before", "after"])
    }

    @Test(arguments: Backend.allCases)
    func aShortSleepWaitsInPlaceHoldingItsLease(_ backend: Backend) async throws {
        let clock = ManualClock()
        let workflow = self.workflow(sleeping: .seconds(1))
        try await backend.withStore { store in
            let result = try await withTestApp(store: store, configuration: configuration(clock, inMemory: .seconds(2))) { app in
                let handle = try await app.start(workflow, "c", instanceID: "t3")
                await clock.waitForSleepers(count: 1)
                #expect(app.instancesRunningHere == ["t3"])
                #expect(try await store.instance("t3")?.readyAt == nil)
                clock.advance(by: .seconds(1))
                return try await handle.result()
            }
            #expect(result == "done c")
        }
    }

    @Test(arguments: Backend.allCases)
    func aDeadlineInThePastGoesOnAtOnce(_ backend: Backend) async throws {
        let clock = ManualClock()
        let past = clock.now().addingTimeInterval(-60)
        let workflow = Workflow("late") { (ctx) -> Int in
            try await ctx.sleep(until: past, timerID: "late-timer")
            return 1
        }
        try await backend.withStore { store in
            let result = try await withTestApp(store: store, configuration: configuration(clock, inMemory: .zero)) { app in
                try await app.start(workflow, instanceID: "t4").result()
            }
            #expect(result == 1)
            #expect(try await store.history(of: "t4").map(\.stepID) == ["late-timer"])
        }
    }
}
