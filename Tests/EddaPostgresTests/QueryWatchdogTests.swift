import Edda
@testable import EddaPostgres
import Synchronization
import Testing

/// Store statements that never answer fail after the timeout instead of hanging their caller.
@Suite("PostgreSQL query watchdog", .timeLimit(.minutes(1)))
struct QueryWatchdogTests {
    @Test func anOperationThatNeverAnswersFailsAfterTheTimeoutAndOthersGoOn() async throws {
        // A second of slack: a busy machine may take a while to schedule even an operation that
        // answers at once, and only the lost one must time out.
        let watchdog = QueryWatchdog(timeout: .seconds(1))
        let watching = Task { await watchdog.watch(every: .milliseconds(50)) }
        defer { watching.cancel() }
        let lost = Task {
            try await watchdog.run("a lost query") { () -> Int in
                // A write that was dropped: nothing ever answers, and cancellation is ignored.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
                return 0
            }
        }
        #expect(try await watchdog.run("a healthy query") { 42 } == 42)
        let error = await #expect(throws: StoreError.self) { try await lost.value }
        #expect(error?.message.contains("did not answer 'a lost query'") == true)
        #expect(try await watchdog.run("the next query") { "fine" } == "fine")
    }

    @Test func errorsAndCancellationPassThrough() async throws {
        struct Boom: Error {}
        let watchdog = QueryWatchdog(timeout: .seconds(30))
        await #expect(throws: Boom.self) { try await watchdog.run("failing") { () -> Int in throw Boom() } }
        let started = Atomic(false)
        let waiting = Task {
            try await watchdog.run("slow") { () -> Int in
                started.store(true, ordering: .relaxed)
                try await Task.sleep(for: .seconds(60))
                return 1
            }
        }
        while !started.load(ordering: .relaxed) { await Task.yield() }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }
}
