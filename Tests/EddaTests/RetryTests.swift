@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

struct ConnectionError: Error, CustomStringConvertible {
    var description: String { "Network timeout" }
}

@Suite("Retries and recorded failures", .timeLimit(.minutes(1)))
struct RetryTests {
    @Test(arguments: Backend.allCases)
    func aFailedInstanceRetriedRunsOnlyItsFailedStepAgain(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let broken = Mutex(true)
        let first = Activity("first") { (ctx) -> Int in
            log.record("first")
            return 1
        }
        let fragile = Activity("fragile", retry: .noRetry) { (ctx) -> Int in
            log.record("fragile")
            if broken.withLock({ $0 }) { throw TerminalError("the service is down") }
            return 2
        }
        let workflow = Workflow("retried") { (ctx) -> Int in try await first(ctx) + fragile(ctx) }
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: "r-1").result() }
                broken.withLock { $0 = false }   // the service is back
                #expect(try await app.retry("r-1") == "fragile:1")
                let again = await #expect(throws: EngineError.self) { try await app.retry("nope") }
                #expect(again?.code == .instanceNotFound)
                return try await app.handle(for: workflow, instanceID: "r-1").result()
            }
            #expect(result == 3)
            #expect(log.all == ["first", "fragile", "fragile"], "the recorded step replayed; only the failed one ran again")
            #expect(
                try await store.history(of: "r-1").map(\.kind) == [.activityCompleted, .retried, .activityCompleted],
                "the retry is recorded between the replayed step and the one run again"
            )
            try await withTestApp(store: store) { app in
                let notFailed = await #expect(throws: EngineError.self) { try await app.retry("r-1") }
                #expect(notFailed?.code == .notFailed)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aLongBackoffReleasesTheInstanceUntilTheNextAttemptIsDue(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let policy = RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(600), backoffCoefficient: 1, maxInterval: .seconds(1), maxDuration: nil)
        let flaky = Activity("flaky", retry: policy) { (ctx) -> Int in
            log.record("attempt \(ctx.attempt)")
            if ctx.attempt < 2 { throw ConnectionError() }
            return ctx.attempt
        }
        let workflow = Workflow("backing_off") { (ctx) -> Int in try await flaky(ctx) }
        // The app's clock moves only when the test moves it, so the backoff lasts as long as the test
        // needs to look at the released instance, however loaded the machine.
        let clock = ManualClock()
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.maxInMemoryWait = .milliseconds(20)   // 600 ms is "long": a durable timer
        try await backend.withStore { store in
            let (result, released, before) = try await withTestApp(store: store, configuration: configuration) { app in
                let handle = try await app.start(workflow, instanceID: "b1")
                // Released (no lease) with the next attempt's time as its ready time, during the backoff.
                var released: WorkflowInstance?
                try await waitUntil {
                    let instance = try await store.instance("b1")
                    if instance?.leaseOwner == nil, instance?.readyAt != nil { released = instance }
                    return released != nil
                }
                let backingOff = try #require(released)
                let before = log.all
                // The worker waits for the deadline on the app's clock.
                let wait = await clock.nextSleep()
                #expect(wait == .milliseconds(600))
                clock.advance(by: wait)
                return (try await handle.result(), backingOff, before)
            }
            #expect(result == 2)
            #expect(before == ["attempt 1"], "no attempt before the backoff ended")
            #expect(log.all == ["attempt 1", "attempt 2"])
            #expect(released.readyAt != nil, "released until the next attempt is due")
            let history = try await store.history(of: "b1")
            #expect(history.map(\.kind) == [.attemptFailed, .activityCompleted])
            let scheduled = try #require(try history.first?.payload?.decode(AttemptRecord.self))
            #expect(released.readyAt?.millisecondsSince1970Value == scheduled.nextAttemptAtMilliseconds)
            #expect(scheduled.nextAttemptAtMilliseconds == clock.now().millisecondsSince1970Value, "due at the advanced time")
        }
    }

    @Test(arguments: Backend.allCases)
    func succeedsAfterTwoFailuresAndRecordsMetadata(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let flaky = Activity("call_external_api") { (ctx) -> String in
            log.record("attempt \(ctx.attempt)")
            if ctx.attempt < 3 { throw ConnectionError() }
            return "data"
        }
        let workflow = Workflow("resilient") { (ctx) -> String in try await flaky(ctx) }
        let history = try await backend.withTestApp { app in
            let handle = try await app.start(workflow)
            #expect(try await handle.result() == "data")
            return try await app.history(of: handle.instanceID)
        }
        #expect(log.all == ["attempt 1", "attempt 2", "attempt 3"])
        #expect(history.map(\.kind) == [.attemptFailed, .attemptFailed, .activityCompleted])
        let retry = try #require(history.last?.retry)
        #expect(retry.totalAttempts == 3)
        #expect(retry.exhausted == false)
        #expect(retry.lastError == ErrorRecord(type: "ConnectionError", message: "Network timeout"))
        #expect(retry.errors.count == 2)
    }

    @Test(arguments: Backend.allCases)
    func exhaustionKeepsTheCauseAndEveryAttemptsError(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let charge = Activity("charge_payment") { (ctx, orderID: String) -> String in
            log.record("charge")
            throw ConnectionError()
        }
        let notify = Activity("notify_payment_team") { (ctx, orderID: String) -> Bool in
            log.record("notify")
            return true
        }
        // The seed's fallback example: catch, notify, rethrow.
        let orderWorkflow = Workflow("order_workflow") { (ctx, orderID: String) -> String in
            do {
                return try await charge(ctx, orderID)
            } catch let error as RetryExhaustedError {
                #expect(error.attempts == 5)
                #expect(error.cause is ConnectionError)
                #expect(error.errors.count == 5)
                _ = try await notify(ctx, orderID)
                throw error
            }
        }
        let (failure, history) = try await backend.withTestApp { app in
            let handle = try await app.start(orderWorkflow, "ORD-1")
            let failure = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (failure, try await app.history(of: handle.instanceID))
        }
        #expect(log.count("charge") == 5)
        #expect(log.count("notify") == 1)
        #expect(failure.error.type == "RetryExhaustedError")
        #expect(history.map(\.kind) == Array(repeating: .attemptFailed, count: 4) + [.activityFailed, .activityCompleted])
        let failed = try #require(history.first { $0.kind == .activityFailed })
        #expect(failed.retry?.exhausted == true)
        #expect(failed.retry?.totalAttempts == 5)
        #expect(failed.error == ErrorRecord(type: "ConnectionError", message: "Network timeout"))
    }

    @Test(arguments: Backend.allCases)
    func terminalErrorRunsOnceAndReachesTheWorkflowAsItself(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let validate = Activity("validate_user") { (ctx, userID: String) -> String in
            log.record("validate")
            throw TerminalError("User \(userID) not found")
        }
        let workflow = Workflow("lookup") { (ctx, userID: String) -> String in
            do {
                return try await validate(ctx, userID)
            } catch let error as TerminalError {
                return "caught: \(error.message)"
            }
        }
        let result = try await backend.withTestApp { app in try await app.start(workflow, "u-9").result() }
        #expect(result == "caught: User u-9 not found")
        #expect(log.count("validate") == 1)
    }

    @Test(arguments: Backend.allCases)
    func recordedFailureIsRethrownOnReplayWithoutRunningTheBody(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let validate = Activity("validate_user") { (ctx) -> String in
            log.record("validate")
            return "ok"
        }
        let charge = Activity("charge") { (ctx) -> String in
            log.record("charge")
            return "ok"
        }
        let workflow = Workflow("replayed_failure") { (ctx) -> String in
            do {
                _ = try await validate(ctx)
            } catch let error as TerminalError {
                return "terminal: \(error.message)"
            }
            return try await charge(ctx)
        }
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("f1", workflowName: "replayed_failure", input: JSONPayload(json: "[]"), owner: "old")
            try await store.append(
                HistoryEvent(
                    instanceID: "f1", stepID: "validate_user:1", position: 1, name: "validate_user", kind: .activityFailed,
                    error: ErrorRecord(type: "TerminalError", message: "User u-1 not found")
                ),
                lease: lease
            )
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(workflow)
            let result = try await app.run { app in try await app.handle(for: workflow, instanceID: "f1").result() }
            #expect(result == "terminal: User u-1 not found")
            #expect(log.all.isEmpty)
        }
    }

    @Test func defaultPolicyIsTheSeedsSchedule() {
        let policy = RetryPolicy.default
        #expect(policy.maxAttempts == 5)
        #expect((1...4).map { policy.delay(afterAttempt: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        let custom = RetryPolicy(maxAttempts: 10, initialInterval: .milliseconds(500), backoffCoefficient: 1.5, maxInterval: .seconds(30), maxDuration: .seconds(120))
        #expect(custom.delay(afterAttempt: 2) == .milliseconds(750))
        #expect(custom.delay(afterAttempt: 20) == .seconds(30))
    }

    @Test func delayStaysAtMaxIntervalForAnyAttemptNumber() {
        // Attempts are durable, so a step can reach attempt 70, or a million; the delay once trapped
        // with "Overflow in multiplication" past about 69 and the process crash-looped on restart.
        let unbounded = RetryPolicy(maxAttempts: .max, maxDuration: nil)
        for attempt in [69, 70, 1_000, 1_000_000, Int.max] {
            #expect(unbounded.delay(afterAttempt: attempt) == .seconds(60))
        }
        let fast = RetryPolicy(initialInterval: .milliseconds(1), maxInterval: .milliseconds(50))
        #expect((1...7).map { fast.delay(afterAttempt: $0) } == [1, 2, 4, 8, 16, 32, 50].map { .milliseconds($0) })
        #expect(RetryPolicy(initialInterval: .zero).delay(afterAttempt: 3) == .zero)
    }
}

extension Date {
    var millisecondsSince1970Value: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }
}
