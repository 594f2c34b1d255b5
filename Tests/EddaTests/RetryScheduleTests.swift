@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTesting
import Foundation
import Testing

@Suite("Retry schedule on an injected clock", .timeLimit(.minutes(1)))
struct RetryScheduleTests {
    func configuration(_ clock: ManualClock, _ policy: RetryPolicy) -> EddaApp.Configuration {
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        configuration.defaultRetryPolicy = policy
        // The manual clock's sleepers are in memory: keep every backoff there (longer ones would
        // end the run as a durable timer, which RetryTests covers).
        configuration.maxInMemoryWait = .seconds(86_400)
        return configuration
    }

    @Test func defaultScheduleWaitsOneTwoFourEightSeconds() async throws {
        let clock = ManualClock()
        let log = ExecutionLog()
        let alwaysFails = Activity("call_external_api") { (ctx) -> String in
            log.record("attempt \(ctx.attempt)")
            throw ConnectionError()
        }
        let workflow = Workflow("resilient_workflow") { (ctx) -> String in try await alwaysFails(ctx) }
        let app = EddaApp(store: try SQLiteStore.inMemory(), serviceName: "test", configuration: configuration(clock, .default))
        let (waits, error) = try await app.run { app in
            let handle = try await app.start(workflow)
            var waits: [Duration] = []
            for _ in 1...4 {
                let wait = await clock.nextSleep()
                waits.append(wait)
                clock.advance(by: wait)
            }
            let error = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (waits, error)
        }
        #expect(waits == [.seconds(1), .seconds(2), .seconds(4), .seconds(8)])
        #expect(log.all == ["attempt 1", "attempt 2", "attempt 3", "attempt 4", "attempt 5"])
        #expect(error.error.type == "RetryExhaustedError")
    }

    @Test func maxDurationStopsBeforeAttemptsRunOut() async throws {
        let clock = ManualClock()
        let log = ExecutionLog()
        let policy = RetryPolicy(maxAttempts: 10, initialInterval: .seconds(1), backoffCoefficient: 2, maxInterval: .seconds(30), maxDuration: .seconds(5))
        let alwaysFails = Activity("slow_api", retry: policy) { (ctx) -> String in
            log.record("attempt \(ctx.attempt)")
            throw ConnectionError()
        }
        let workflow = Workflow("budgeted") { (ctx) -> Int in
            do {
                _ = try await alwaysFails(ctx)
                return 0
            } catch let error as RetryExhaustedError {
                return error.attempts
            }
        }
        let app = EddaApp(store: try SQLiteStore.inMemory(), serviceName: "test", configuration: configuration(clock, .default))
        let (attempts, waits) = try await app.run { app in
            let handle = try await app.start(workflow)
            var waits: [Duration] = []
            for _ in 1...2 {
                let wait = await clock.nextSleep()
                waits.append(wait)
                clock.advance(by: wait)
            }
            return (try await handle.result(), waits)
        }
        // Attempt 1 at 0 s, 2 at 1 s, 3 at 3 s; a 4th would start at 7 s, past the 5 s budget.
        #expect(attempts == 3)
        #expect(waits == [.seconds(1), .seconds(2)])
        #expect(log.all.count == 3)
    }

    @Test func resumedRetriesContinueTheCountAndWaitOnlyTheRest() async throws {
        let clock = ManualClock()
        let log = ExecutionLog()
        let flaky = Activity("flaky") { (ctx) -> Int in
            log.record("attempt \(ctx.attempt)")
            throw ConnectionError()
        }
        let workflow = Workflow("flaky_workflow") { (ctx) -> Int in try await flaky(ctx) }
        // An earlier process ran attempts 1 and 2 (the second 3 s ago, in clock time) and died
        // during the 4 s backoff before attempt 3.
        let now = clock.now()
        let first = now.addingTimeInterval(-4)
        let store = try SQLiteStore.inMemory()
        let lease = try await store.createLeasedInstance("r1", workflowName: "flaky_workflow", input: JSONPayload(json: "[]"), owner: "old")
        let errors = [ErrorRecord(type: "ConnectionError", message: "Network timeout"), ErrorRecord(type: "ConnectionError", message: "Network timeout")]
        for attempt in 1...2 {
            let schedule = AttemptRecord(
                attempt: attempt,
                firstAttemptAtMilliseconds: Int64(first.timeIntervalSince1970 * 1000),
                nextAttemptAtMilliseconds: Int64(now.addingTimeInterval(attempt == 2 ? 1 : -3).timeIntervalSince1970 * 1000)
            )
            try await store.append(
                HistoryEvent(
                    instanceID: "r1", stepID: "flaky:1", position: 1, name: "flaky", kind: .attemptFailed,
                    payload: try JSONPayload.encode(schedule), error: errors[attempt - 1],
                    retry: RetryMetadata(totalAttempts: attempt, totalDurationMilliseconds: 0, exhausted: false, lastError: errors[attempt - 1], errors: Array(errors[..<attempt]))
                ),
                lease: lease
            )
        }
        let policy = RetryPolicy(maxAttempts: 3, initialInterval: .seconds(2), backoffCoefficient: 2, maxInterval: .seconds(60), maxDuration: nil)
        try await store.release(lease, readyAt: nil)
        let app = EddaApp(store: store, serviceName: "test", configuration: configuration(clock, policy))
        try app.register(workflow)
        let (remaining, failure) = try await app.run { app in
            let remaining = await clock.nextSleep()
            clock.advance(by: remaining)
            let failure = try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: workflow, instanceID: "r1").result() }
            return (remaining, failure)
        }
        #expect(remaining == .seconds(1), "only what is left of the recorded backoff")
        #expect(log.all == ["attempt 3"], "attempts 1 and 2 are not repeated")
        #expect(failure.error.type == "RetryExhaustedError")
        let outcome = try #require(try await store.history(of: "r1").last)
        #expect(outcome.kind == .activityFailed)
        #expect(outcome.retry?.totalAttempts == 3)
        #expect(outcome.retry?.errors.count == 3)
        #expect(outcome.retry?.totalDurationMilliseconds == 5000)
    }
}
