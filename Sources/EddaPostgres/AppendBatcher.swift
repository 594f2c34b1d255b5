import CoreMetrics
import Edda
import Synchronization

/// Shares one statement and one commit between concurrent appends (group commit on PostgreSQL).
///
/// One commit per step would cap a busy worker at the server's commit rate. Here the first append
/// to arrive leads: it writes its record together with every record queued meanwhile, in one fenced
/// `INSERT … SELECT … FROM json_to_recordset(…)`, then hands the lead to the next queued caller, so
/// no caller waits for more than the batch it is in. Each caller returns only once the statement
/// that holds its record has committed; a lone append pays nothing extra.
final class AppendBatcher: Sendable {
    /// One append: the record and the lease that fences it.
    struct Record: Sendable {
        var event: HistoryEvent
        var lease: Lease
    }

    private enum Role: Sendable {
        case done(Result<Void, any Error>)
        case lead
    }

    private struct Pending: Sendable {
        let record: Record
        let continuation: CheckedContinuation<Role, Never>
    }

    private struct State: Sendable {
        var leaderActive = false
        var queue: [Pending] = []
    }

    private let state = Mutex(State())
    /// `edda_commit_duration_seconds{backend="postgres"}`: one batch's statement and commit, through
    /// the `MetricsSystem` bootstrapped when the store is created.
    private let commitDuration = CoreMetrics.Timer(label: "edda_commit_duration_seconds", dimensions: [("backend", "postgres")])

    /// Appends `record` through `write`, which inserts a batch and returns each record's result in order.
    func append(
        _ record: Record, write: @Sendable ([Record]) async -> [Result<Void, any Error>]
    ) async throws {
        let role: Role = await withCheckedContinuation { continuation in
            let leadNow = state.withLock { state -> Bool in
                if state.leaderActive {
                    state.queue.append(Pending(record: record, continuation: continuation))
                    return false
                }
                state.leaderActive = true
                return true
            }
            if leadNow { continuation.resume(returning: .lead) }
        }
        switch role {
        case .done(let result):
            try result.get()
        case .lead:
            try await lead(with: record, write: write).get()
        }
    }

    private func lead(
        with own: Record, write: @Sendable ([Record]) async -> [Result<Void, any Error>]
    ) async -> Result<Void, any Error> {
        let followers = state.withLock { state -> [Pending] in
            defer { state.queue.removeAll(keepingCapacity: true) }
            return state.queue
        }
        let started = ContinuousClock.now
        let results = await write([own] + followers.map(\.record))
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        commitDuration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        // Hand over before waking anyone, so appends arriving now find a leader or become one.
        let next = state.withLock { state -> Pending? in
            guard !state.queue.isEmpty else {
                state.leaderActive = false
                return nil
            }
            return state.queue.removeFirst()
        }
        for (pending, result) in zip(followers, results.dropFirst()) {
            pending.continuation.resume(returning: .done(result))
        }
        next?.continuation.resume(returning: .lead)
        return results[0]
    }
}
