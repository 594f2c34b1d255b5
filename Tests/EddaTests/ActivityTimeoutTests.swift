@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

@Suite("Activity timeouts and heartbeats", .timeLimit(.minutes(1)))
struct ActivityTimeoutTests {
    static let quickRetry = RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(10), maxDuration: nil)

    @Test(arguments: Backend.allCases)
    func anAttemptPastItsTimeoutFailsIsRetriedAndItsLateResultIsDiscarded(_ backend: Backend) async throws {
        let hang = Gate()
        let attempts = Mutex<[Int]>([])
        let lateReturn = Gate()
        // The first attempt waits on a call that never answers and ignores cancellation.
        let fetch = Activity("fetch", retry: Self.quickRetry, timeout: .milliseconds(300)) { (ctx) -> String in
            attempts.withLock { $0.append(ctx.attempt) }
            if ctx.attempt == 1 {
                await hang.wait()
                lateReturn.open()
                return "late"
            }
            return "on time"
        }
        let workflow = Workflow("timed_fetch") { (ctx) -> String in try await fetch(ctx) }
        try await backend.withStore { store in
            let started = ContinuousClock.now
            let result = try await withTestApp(store: store) { app in try await app.start(workflow, instanceID: "t-1").result() }
            #expect(result == "on time")
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(attempts.withLock { $0 } == [1, 2])
            let history = try await store.history(of: "t-1")
            #expect(history.map(\.kind) == [.attemptFailed, .activityCompleted])
            let failure = try #require(history.first?.error)
            #expect(failure.type == "ActivityTimeoutError")
            #expect(failure.message.contains("attempt 1 did not finish within its timeout of 300 ms"), "\(failure.message)")
            // The abandoned body answers at last: its result changes nothing.
            hang.open()
            await lateReturn.wait()
            #expect(try await store.history(of: "t-1").count == 2)
            #expect(try await store.instance("t-1")?.output?.decode(String.self) == "on time")
        }
    }

    @Test
    func aBodyThatHeartbeatsRunsPastItsHeartbeatTimeoutAndOneThatStopsFails() async throws {
        // Reports every 20 ms for 300 ms: longer than its 150 ms heartbeat timeout, never silent that long.
        let steady = Activity("steady", retry: .noRetry, heartbeatTimeout: .milliseconds(150)) { (ctx) -> Int in
            for beat in 1...15 {
                try await Task.sleep(for: .milliseconds(20))
                try ctx.heartbeat(beat)
            }
            return 15
        }
        let silent = Gate()
        let cancelledAtHeartbeat = Mutex(false)
        let stuck = Activity("stuck", retry: .noRetry, heartbeatTimeout: .milliseconds(150)) { (ctx) -> Int in
            try ctx.heartbeat()
            await silent.wait()   // never answers, ignores cancellation
            do {
                try ctx.heartbeat()
            } catch is CancellationError {
                cancelledAtHeartbeat.withLock { $0 = true }
            }
            return 0
        }
        let workflow = Workflow("heartbeats") { (ctx) -> Int in
            let done = try await steady(ctx)
            do {
                return try await stuck(ctx)
            } catch let error as RetryExhaustedError {
                #expect(error.lastError?.type == "ActivityTimeoutError")
                #expect(error.lastError?.message.contains("sent no heartbeat for 150 ms") == true)
                return -done
            }
        }
        try await Backend.sqlite.withStore { store in
            let result = try await withTestApp(store: store) { app in try await app.start(workflow, instanceID: "h-1").result() }
            #expect(result == -15)
        }
        // The given-up body learns it at its next heartbeat.
        silent.open()
        try await waitUntil { cancelledAtHeartbeat.withLock { $0 } }
    }

    @Test
    func aRetriedAttemptReadsTheHeartbeatDetailsOfTheOneBefore() async throws {
        let hang = Gate()
        let resumedFrom = Mutex<[Int?]>([])
        let importRows = Activity("import_rows", retry: Self.quickRetry, heartbeatTimeout: .milliseconds(150)) { (ctx) -> Int in
            var done = ctx.heartbeatDetails(as: Int.self)
            resumedFrom.withLock { $0.append(done) }
            if done == nil {
                done = 40
                try ctx.heartbeat(40)
                await hang.wait()   // stuck after 40 rows
            }
            return (done ?? 0) + 60
        }
        let workflow = Workflow("import") { (ctx) -> Int in try await importRows(ctx) }
        try await Backend.sqlite.withStore { store in
            let result = try await withTestApp(store: store) { app in try await app.start(workflow, instanceID: "i-1").result() }
            #expect(result == 100)
        }
        #expect(resumedFrom.withLock { $0 } == [nil, 40])
        hang.open()
    }
}
