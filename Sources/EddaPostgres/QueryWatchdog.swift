@_spi(EddaStores) import Edda
import Foundation
import Synchronization

/// Gives up on store operations that never answer.
///
/// PostgresNIO (1.33) can lose a query sent on a connection that has just closed — the server
/// terminated it, the network dropped it: the write is discarded and its answer never comes, so
/// the caller would wait forever (and a group commit's leader with it, and every append queued
/// behind it). The watchdog runs each operation in a task of its own and, past the store's
/// ``PostgresStore/Configuration-swift.struct/queryTimeout``, fails the caller with a
/// ``StoreError``: the engine treats it like any store failure and retries on a fresh connection.
/// The lost task is cancelled and left to the pool, which drops the dead connection.
final class QueryWatchdog: Sendable {
    private struct Waiter {
        let deadline: ContinuousClock.Instant
        let timeout: Duration
        let what: String
        let fail: @Sendable (any Error) -> Void
    }

    private let waiters = Mutex<[UInt64: Waiter]>([:])
    private let nextID = Atomic<UInt64>(0)
    let timeout: Duration

    init(timeout: Duration) {
        self.timeout = timeout
    }

    /// Runs `operation`, failing with a `StoreError` if it has not answered within the timeout
    /// (`timeout`, when given, instead of the store's: a lease renewal must fail while the lease holds).
    func run<T: Sendable>(
        _ what: String, timeout: Duration? = nil, _ operation: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let timeout = timeout ?? self.timeout
        let id = nextID.add(1, ordering: .relaxed).newValue
        let work = AbandonableTask(operation)
        waiters.withLock {
            $0[id] = Waiter(deadline: .now + timeout, timeout: timeout, what: what) { error in work.abandon(with: error) }
        }
        work.onOutcome { [self] in _ = self.waiters.withLock { $0.removeValue(forKey: id) } }
        return try await work.value
    }

    /// Fails the operations past their deadline, every `interval`, until cancelled.
    func watch(every interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = ContinuousClock.now
            let expired = waiters.withLock { waiters -> [Waiter] in
                let expired = waiters.filter { $0.value.deadline <= now }
                for id in expired.keys { waiters[id] = nil }
                return Array(expired.values)
            }
            for waiter in expired {
                waiter.fail(
                    StoreError(
                        .database,
                        "PostgreSQL did not answer '\(waiter.what)' within \(waiter.timeout); the connection is taken as lost and the operation is retried.",
                        cause: QueryTimedOut()
                    )
                )
            }
        }
    }
}

/// The cause of a watchdog's ``StoreError``: the statement got no answer in time.
struct QueryTimedOut: Error, CustomStringConvertible {
    var description: String { "no answer within the query timeout" }

    /// Whether `error` is a watchdog's timeout.
    static func caused(_ error: any Error) -> Bool {
        (error as? StoreError)?.cause is QueryTimedOut
    }
}
