@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// Schedules on both backends, with a manual clock: each test moves time and runs a pass of the
/// scheduler (`passSchedules()`) besides the running app's own passes, which decide the same.
@Suite("Schedules", .timeLimit(.minutes(2)))
struct ScheduleTests {
    let log = ExecutionLog()
    let gate = Gate()

    static func utc(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }
    static func id(_ tick: String) -> String { "sched:every-minute:\(tick)" }

    /// Records "<instance> <input>" then, when gated, waits for the gate; returns its input.
    func workflow(gated: Bool) -> Workflow<String, String> {
        let (log, gate) = (self.log, self.gate)
        let step = Activity("work") { (ctx, tick: String) -> String in
            log.record("\(ctx.instanceID) \(tick)")
            if gated { await gate.wait() }
            return tick
        }
        // A second step: a cancellation asked for during the first ends the instance cancelled.
        let done = Activity("done") { (_, tick: String) -> String in tick }
        return Workflow("scheduled") { (ctx, tick: String) -> String in try await done(ctx, try await step(ctx, tick)) }
    }

    func schedule(_ overlap: Schedule.OverlapPolicy, window: Duration = .seconds(60), gated: Bool = false) -> Schedule {
        Schedule("every-minute", workflow(gated: gated), .every(.seconds(60)), overlap: overlap, catchUpWindow: window) { $0.formatted(.iso8601) }
    }

    /// A clock at 10:00:30 (the first tick is 10:01) and an app on it.
    func withApp(_ backend: Backend, _ schedule: Schedule, _ body: @escaping @Sendable (EddaApp, ManualClock) async throws -> Void) async throws {
        let clock = ManualClock(now: Self.utc("2026-01-05T10:00:30Z"))
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        try await backend.withTestApp(configuration: configuration) { app in
            try app.register(schedule)
            try await app.passSchedules()
            try await body(app, clock)
        }
    }

    func startedIDs(_ app: EddaApp) async throws -> [String] {
        try await app.instances(workflowName: "scheduled").map(\.instanceID).sorted()
    }

    @Test(arguments: Backend.allCases)
    func twoAppsOnOneDatabaseStartEachTickOnce(_ backend: Backend) async throws {
        let schedule = schedule(.allowAll)
        let clock = ManualClock(now: Self.utc("2026-01-05T10:00:30Z"))
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        try await backend.withDatabase { database in
            let (running, other) = (try await database.open(), try await database.open())
            // The second app runs no worker (on SQLite one worker holds a file): it passes, as a second worker's scheduler would.
            let second = EddaApp(store: other, serviceName: "test", configuration: configuration, logger: .quiet)
            try second.register(schedule)
            try await withTestApp(store: running, configuration: configuration) { app in
                try app.register(schedule)
                try await app.passSchedules()
                for _ in 0..<10 {
                    clock.advance(by: .seconds(60))
                    async let first: Void = app.passSchedules()
                    async let again: Void = second.passSchedules()
                    async let third: Void = app.passSchedules()
                    _ = try await (first, again, third)
                }
                let expected = (1...10).map { Self.id(String(format: "2026-01-05T10:%02d:00Z", $0)) }
                #expect(try await startedIDs(app) == expected)
                for id in expected { _ = try await app.handle(for: schedule.workflow, instanceID: id).result() }
                let stored = try #require(try await app.store.schedule(named: "every-minute"))
                #expect(stored.nextTick == Self.utc("2026-01-05T10:11:00Z"))
                #expect(stored.lastInstanceID == Self.id("2026-01-05T10:10:00Z"))
            }
        }
        // Each instance ran its step once, with the tick it was started for.
        for minute in 1...10 {
            let tick = String(format: "2026-01-05T10:%02d:00Z", minute)
            #expect(log.count("\(Self.id(tick)) \(tick)") == 1)
        }
    }

    @Test(arguments: Backend.allCases, [Schedule.OverlapPolicy.skip, .allowAll, .bufferOne])
    func aTickWhileThePreviousRunsFollowsTheOverlapPolicy(_ backend: Backend, _ overlap: Schedule.OverlapPolicy) async throws {
        let gate = self.gate
        let schedule = schedule(overlap, gated: true)
        let (t1, t2, t3) = (Self.id("2026-01-05T10:01:00Z"), Self.id("2026-01-05T10:02:00Z"), Self.id("2026-01-05T10:03:00Z"))
        try await withApp(backend, schedule) { app, clock in
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            try await waitUntil { log.all.contains { $0.hasPrefix(t1) } }
            // Two more ticks while the first instance waits at the gate.
            for _ in 0..<2 {
                clock.advance(by: .seconds(60))
                try await app.passSchedules()
            }
            let whileRunning = try await startedIDs(app)
            switch overlap {
            case .allowAll: #expect(whileRunning == [t1, t2, t3])
            default: #expect(whileRunning == [t1])
            }
            let buffered = try await app.store.schedule(named: "every-minute")?.bufferedTicks
            #expect(buffered == (overlap == .bufferOne ? [Self.utc("2026-01-05T10:02:00Z")] : []))
            gate.open()
            _ = try await app.handle(for: schedule.workflow, instanceID: t1).result()
            try await app.passSchedules()
            let afterwards = try await startedIDs(app)
            switch overlap {
            case .skip: #expect(afterwards == [t1], "skipped ticks never start")
            case .bufferOne: #expect(afterwards == [t1, t2], "the one buffered tick starts once the first finished; the third was dropped")
            default: #expect(afterwards == [t1, t2, t3])
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func cancelOtherCancelsThePreviousInstanceAndStartsTheTick(_ backend: Backend) async throws {
        let gate = self.gate
        let schedule = schedule(.cancelOther, gated: true)
        let (t1, t2) = (Self.id("2026-01-05T10:01:00Z"), Self.id("2026-01-05T10:02:00Z"))
        try await withApp(backend, schedule) { app, clock in
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            try await waitUntil { log.all.contains { $0.hasPrefix(t1) } }
            clock.advance(by: .seconds(60))
            try await app.passSchedules()
            #expect(try await startedIDs(app) == [t1, t2])
            #expect(try await app.instance(t1)?.cancelRequested == true, "the previous instance was asked to cancel")
            gate.open()
            await #expect(throws: WorkflowCancelledError.self) { try await app.handle(for: schedule.workflow, instanceID: t1).result() }
            #expect(try await app.handle(for: schedule.workflow, instanceID: t2).result() == "2026-01-05T10:02:00Z")
        }
    }

    @Test(arguments: Backend.allCases)
    func bufferAllStartsEveryTickInTurnEachAfterThePreviousFinished(_ backend: Backend) async throws {
        let gate = self.gate
        let schedule = schedule(.bufferAll, gated: true)
        let ids = ["10:01", "10:02", "10:03"].map { Self.id("2026-01-05T\($0):00Z") }
        try await withApp(backend, schedule) { app, clock in
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            try await waitUntil { log.all.contains { $0.hasPrefix(ids[0]) } }
            for _ in 0..<2 {
                clock.advance(by: .seconds(60))
                try await app.passSchedules()
            }
            #expect(try await startedIDs(app) == [ids[0]])
            #expect(try await app.store.schedule(named: "every-minute")?.bufferedTicks.count == 2)
            gate.open()
            try await waitUntil {
                try await app.passSchedules()
                return try await startedIDs(app) == ids
            }
            for id in ids { _ = try await app.handle(for: schedule.workflow, instanceID: id).result() }
            let instances = try await ids.asyncMap { try #require(try await app.instance($0)) }
            for (previous, next) in zip(instances, instances.dropFirst()) {
                #expect(next.createdAt >= previous.updatedAt, "\(next.instanceID) started once \(previous.instanceID) had finished")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func ticksMissedLongerThanTheCatchUpWindowAreSkipped(_ backend: Backend) async throws {
        try await withApp(backend, schedule(.allowAll, window: .seconds(300))) { app, clock in
            // No pass for an hour: 10:01 through 11:00 were missed; those within five minutes of 11:00:30 start.
            clock.advance(by: .seconds(3600))
            try await app.passSchedules()
            #expect(try await startedIDs(app) == ["10:56", "10:57", "10:58", "10:59", "11:00"].map { Self.id("2026-01-05T\($0):00Z") })
            #expect(try await app.store.schedule(named: "every-minute")?.nextTick == Self.utc("2026-01-05T11:01:00Z"))
        }
    }

    @Test(arguments: Backend.allCases)
    func aPausedScheduleStartsNoTickAndResumesFromNow(_ backend: Backend) async throws {
        try await withApp(backend, schedule(.allowAll, window: .seconds(3600))) { app, clock in
            let paused = try await app.pauseSchedule("every-minute")
            #expect(paused.paused)
            clock.advance(by: .seconds(150))  // 10:03:00: 10:01, 10:02 and 10:03 pass while paused
            try await app.passSchedules()
            #expect(try await startedIDs(app).isEmpty)
            #expect(try await app.schedules().first?.upcomingTicks(3) == [], "a paused schedule shows no next tick")
            let resumed = try await app.resumeSchedule("every-minute")
            #expect(!resumed.paused)
            #expect(resumed.nextTick == Self.utc("2026-01-05T10:04:00Z"), "ticks missed while paused are not caught up")
            clock.advance(by: .seconds(60))
            try await app.passSchedules()
            #expect(try await startedIDs(app) == [Self.id("2026-01-05T10:04:00Z")])
            await #expect(throws: EngineError.self) { try await app.pauseSchedule("missing") }
        }
    }

    @Test(arguments: Backend.allCases)
    func triggerStartsNowAndBackfillStartsEachTickOfARangeOnce(_ backend: Backend) async throws {
        try await withApp(backend, schedule(.skip)) { app, clock in
            try await app.pauseSchedule("every-minute")
            let triggered = try await app.triggerSchedule("every-minute")
            #expect(triggered == Self.id("2026-01-05T10:00:30Z"))
            try await app.passSchedules()
            #expect(try await startedIDs(app) == [triggered], "a trigger starts even while paused")
            let first = try await app.backfillSchedule(
                "every-minute", from: Self.utc("2026-01-05T09:00:00Z"), through: Self.utc("2026-01-05T09:02:00Z"))
            #expect(first == ["09:00", "09:01", "09:02"].map { Self.id("2026-01-05T\($0):00Z") })
            try await app.passSchedules()
            // Overlapping the first range: only the new tick starts.
            let second = try await app.backfillSchedule(
                "every-minute", from: Self.utc("2026-01-05T09:02:00Z"), through: Self.utc("2026-01-05T09:03:30Z"))
            #expect(second.count == 2)
            try await app.passSchedules()
            #expect(try await startedIDs(app) == (first + [second[1], triggered]).sorted())
            for id in first + second { _ = try await app.handle(for: schedule(.skip).workflow, instanceID: id).result() }
            #expect(log.count("\(Self.id("2026-01-05T09:02:00Z")) 2026-01-05T09:02:00Z") == 1, "a tick backfilled twice ran once")
            await #expect(throws: EngineError.self) {
                try await app.backfillSchedule("every-minute", from: Self.utc("2026-01-01T00:00:00Z"), through: Self.utc("2026-01-05T00:00:00Z"))
            }
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            #expect(try await startedIDs(app).count == 5, "still paused: no scheduled tick")
        }
    }

    @Test(arguments: Backend.allCases)
    func aScheduleCreatedAtRunTimeStartsItsWorkflowWithItsStoredInput(_ backend: Backend) async throws {
        try await withApp(backend, schedule(.skip)) { app, clock in
            let created = try await app.createSchedule(
                "runtime", workflowNamed: "scheduled", spec: try ScheduleSpec(expression: "*/2 * * * *"), input: JSONPayload(json: #"["fixed"]"#)
            )
            #expect(created.nextTick == Self.utc("2026-01-05T10:02:00Z"))
            do {
                try await app.createSchedule("runtime", workflowNamed: "scheduled", spec: .every(.seconds(60)), input: JSONPayload(json: #"["x"]"#))
                Issue.record("a second schedule of the same name was created")
            } catch let error as EngineError {
                #expect(error.code == .scheduleAlreadyExists)
            }
            await #expect(throws: EngineError.self, "input a registered workflow cannot take is refused") {
                try await app.createSchedule("bad", workflowNamed: "scheduled", spec: .every(.seconds(60)), input: JSONPayload(json: "[1]"))
            }
            #expect(try await app.schedules().map(\.name) == ["every-minute", "runtime"])
            clock.advance(by: .seconds(90))
            try await app.passSchedules()
            let id = "sched:runtime:2026-01-05T10:02:00Z"
            #expect(try await app.instance(id)?.input == JSONPayload(json: #"["fixed"]"#))
            try await app.deleteSchedule("runtime")
            #expect(try await app.schedules().map(\.name) == ["every-minute"])
        }
    }

    @Test(arguments: Backend.allCases)
    func aScheduleOnAQueueStartsEachTickQueuedThereAndAQueuedTickCountsAsRunningForSkip(_ backend: Backend) async throws {
        let gate = self.gate
        let queue = Queue("nightly-jobs", concurrency: 1)
        let workflow = workflow(gated: true)
        let schedule = Schedule("every-minute", workflow, .every(.seconds(60)), on: queue, priority: 2, overlap: .skip) { $0.formatted(.iso8601) }
        let (t1, t2, t3) = (Self.id("2026-01-05T10:01:00Z"), Self.id("2026-01-05T10:02:00Z"), Self.id("2026-01-05T10:03:00Z"))
        try await withApp(backend, schedule) { app, clock in
            let stored = try #require(try await app.store.schedule(named: "every-minute"))
            #expect(stored.queue == "nightly-jobs" && stored.priority == 2, "declared in code, stored with the schedule")
            // The queue's one place is taken: the tick's instance waits queued.
            _ = try await app.start(workflow, "blocker", instanceID: "blocker", on: queue)
            try await waitUntil { log.all.contains { $0.hasPrefix("blocker") } }
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            let first = try #require(try await app.instance(t1))
            #expect(first.status == .queued && first.queue == "nightly-jobs" && first.priority == 2, "\(first.status)")
            // The next tick finds the previous one queued, not finished: skipped.
            clock.advance(by: .seconds(60))
            try await app.passSchedules()
            #expect(try await app.instance(t2) == nil, "skipped while the previous tick's instance is queued")
            #expect(try await app.instance(t1)?.status == .queued)

            gate.open()
            _ = try await app.handle(for: workflow, instanceID: t1).result()
            clock.advance(by: .seconds(60))
            try await app.passSchedules()
            _ = try await app.handle(for: workflow, instanceID: t3).result()
            #expect(try await app.instance(t3)?.queue == "nightly-jobs", "once the previous finished, the next tick starts on the queue")

            // Declared again in code on no queue: the stored definition follows.
            try app.register(Schedule("every-minute", workflow, .every(.seconds(60)), overlap: .skip) { $0.formatted(.iso8601) })
            try await app.passSchedules()
            let redeclared = try #require(try await app.store.schedule(named: "every-minute"))
            #expect(redeclared.queue == nil && redeclared.priority == 0)
        }
    }

    @Test(arguments: Backend.allCases)
    func aScheduleCreatedOnAQueueNeedsAKnownQueueThatIsNotPartitioned(_ backend: Backend) async throws {
        try await withApp(backend, schedule(.skip)) { app, clock in
            app.register(Queue("tenants", concurrency: 1, partitioned: true))
            let spec = ScheduleSpec.every(.seconds(60))
            for (queue, priority, code) in [
                ("nope", 0, EngineError.Code.unknownQueue), ("tenants", 0, .invalidQueueOptions), (nil, 3, .invalidQueueOptions),
            ] as [(String?, Int, EngineError.Code)] {
                do {
                    try await app.createSchedule(
                        "refused", workflowNamed: "scheduled", spec: spec, input: JSONPayload(json: #"["x"]"#), queue: queue, priority: priority
                    )
                    Issue.record("created on queue \(queue ?? "nil") with priority \(priority)")
                } catch let error as EngineError {
                    #expect(error.code == code, "\(queue ?? "nil"): \(error.message)")
                }
            }
            #expect(try await app.schedule(named: "refused") == nil, "nothing was created")

            // A queue declared in the store by another app will do: this one need not register it.
            try await app.store.declareQueues([Queue("elsewhere", concurrency: 3)])
            let created = try await app.createSchedule(
                "runtime", workflowNamed: "scheduled", spec: spec, input: JSONPayload(json: #"["x"]"#), queue: "elsewhere", priority: -1
            )
            #expect(created.queue == "elsewhere" && created.priority == -1)
            #expect(try await app.schedule(named: "runtime") == created)
            clock.advance(by: .seconds(30))
            try await app.passSchedules()
            let started = try #require(try await app.instance("sched:runtime:2026-01-05T10:01:00Z"))
            #expect(started.queue == "elsewhere" && started.priority == -1 && started.status == .queued, "no worker here admits it")
        }
    }
}

extension Schedule {
    /// The schedule's workflow, for handles in tests (its output is a String).
    var workflow: Workflow<String, String> {
        Workflow(workflowName) { (_, tick: String) -> String in tick }
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
