public import CoreMetrics
public import Synchronization

/// Shares one commit between concurrent writers: the leader/follower hand-off both stores use for
/// group commit.
///
/// One commit per write caps a process at the storage's commit rate however many workflows run.
/// Here the first caller to arrive becomes the leader and runs its item at once, so a lone caller
/// waits for nobody. Callers that arrive meanwhile queue; when the leader's batch is done it hands
/// the lead to the first of them, which runs the whole queue as the next batch — so nobody waits for
/// more than the batch ahead of theirs, and the batch grows with the load instead of with a timer.
/// Items run in the order they arrived; batches run one at a time in the same order, or up to
/// `maxConcurrentBatches` at once for a store whose batches may overlap (PostgreSQL's connections
/// commit concurrently; SQLite has one writer).
///
/// Each caller returns only once the batch that holds its item is done, with its own item's
/// outcome: what makes that outcome durable (a transaction, a statement) is `run`'s business, as is
/// what a failing item does to the others — the batcher holds no storage code.
///
/// The leader runs `run` in its own task, on its own thread: no hand-off to a worker thread and
/// back, which matters when `run` blocks on the disk (the SQLite store's leader runs GRDB's
/// synchronous `write`) and would cost two thread wake-ups per commit.
///
/// Cancellation does not withdraw an item: a queued caller may be handed the lead or have its item
/// taken into a batch at any moment, and a write's caller must learn whether it was written, so a
/// cancelled caller still waits for its item's true outcome. A cancelled leader's `run` sees the
/// cancellation like any code in that task.
///
/// Public under SPI, and inlinable, so each store gets it specialized for its item type: `package`
/// bodies are not inlined across modules, and the unspecialized generic hand-off cost the SQLite
/// store 7–12 % of W1's steps/s with `synchronous=NORMAL` (3 alternated runs; 2–4 % once inlined).
@_spi(EddaStores) public final class Batcher<Item: Sendable, Output: Sendable>: Sendable {
    /// What a queued caller is woken with: its outcome, or the lead for the next batch.
    @usableFromInline
    enum Role: Sendable {
        case done(Result<Output, any Error>)
        case lead
    }

    @usableFromInline
    struct Waiting: Sendable {
        @usableFromInline let item: Item
        @usableFromInline let continuation: CheckedContinuation<Role, Never>

        @inlinable
        init(item: Item, continuation: CheckedContinuation<Role, Never>) {
            self.item = item
            self.continuation = continuation
        }
    }

    @usableFromInline
    struct State: Sendable {
        /// Leaders running a batch now, at most `maxConcurrentBatches`.
        @usableFromInline var leaders = 0
        @usableFromInline var queue: [Waiting] = []

        @inlinable
        init() {}
    }

    @usableFromInline let state = Mutex(State())
    @usableFromInline let batchDuration: CoreMetrics.Timer?
    @usableFromInline let maxConcurrentBatches: Int

    /// - Parameters:
    ///   - batchDuration: records how long each batch's `run` took, once per batch (the
    ///     stores' `edda_commit_duration_seconds`), so the figure is a commit's, not a caller's wait.
    ///   - maxConcurrentBatches: how many batches may run at once (at least 1, the default). With
    ///     more than one, a caller arriving while fewer run leads a batch of its own at once, and
    ///     items of different batches may finish in any order.
    public init(batchDuration: CoreMetrics.Timer? = nil, maxConcurrentBatches: Int = 1) {
        self.batchDuration = batchDuration
        self.maxConcurrentBatches = max(1, maxConcurrentBatches)
    }

    /// Callers queued behind the running batch: lets tests line callers up without sleeping.
    @inlinable
    public var waiting: Int {
        state.withLock { $0.queue.count }
    }

    /// Runs `item` in a batch, possibly shared with other callers' items, and returns its outcome once
    /// that batch is done.
    ///
    /// - Parameter run: called by the leader only, with its batch in arrival order (its own item
    ///   first); returns one result per item, in the same order. Throwing fails every item of the
    ///   batch with that error: use it when nothing of the batch took effect (a failed commit).
    @inlinable
    public func submit(
        _ item: Item, run: @Sendable ([Item]) async throws -> [Result<Output, any Error>]
    ) async throws -> Output {
        let role: Role = await withCheckedContinuation { continuation in
            let leadNow = state.withLock { [maxConcurrentBatches] state -> Bool in
                if state.leaders >= maxConcurrentBatches {
                    state.queue.append(Waiting(item: item, continuation: continuation))
                    return false
                }
                state.leaders += 1
                return true
            }
            // Resumed before the await completes, so the leader goes on without suspending.
            if leadNow { continuation.resume(returning: .lead) }
        }
        switch role {
        case .done(let result):
            return try result.get()
        case .lead:
            return try await lead(with: item, run: run).get()
        }
    }

    @inlinable
    func lead(
        with own: Item, run: @Sendable ([Item]) async throws -> [Result<Output, any Error>]
    ) async -> Result<Output, any Error> {
        let followers = state.withLock { state -> [Waiting] in
            defer { state.queue.removeAll(keepingCapacity: true) }
            return state.queue
        }
        var items: [Item] = []
        items.reserveCapacity(1 + followers.count)
        items.append(own)
        for follower in followers { items.append(follower.item) }
        let started = ContinuousClock.now
        var results: [Result<Output, any Error>]
        do {
            results = try await run(items)
        } catch {
            results = Array(repeating: .failure(error), count: items.count)
        }
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        batchDuration?.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        // A miscount would leave callers without their outcome, or with another's: stop instead.
        precondition(results.count == items.count, "A batch of \(items.count) items returned \(results.count) results")
        // Hand over before waking anyone, so items arriving now find a leader or become one.
        let next = state.withLock { state -> Waiting? in
            guard !state.queue.isEmpty else {
                state.leaders -= 1
                return nil
            }
            return state.queue.removeFirst()
        }
        for (follower, result) in zip(followers, results.dropFirst()) {
            follower.continuation.resume(returning: .done(result))
        }
        next?.continuation.resume(returning: .lead)
        return results[0]
    }
}
