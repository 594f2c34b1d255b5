import CoreMetrics
@_spi(EddaStores) import Edda
import MetricsTestKit
import Synchronization
import Testing

/// The group-commit hand-off both stores use, without a database: batches are recorded, held open
/// with gates to line callers up, and given outcomes per item.
@Suite("Batcher: leader/follower group commit", .timeLimit(.minutes(1)))
struct BatcherTests {
    struct Failure: Error, Equatable {
        let item: Int
    }

    /// Records every batch `run` saw, and holds batches starting with a given item until opened.
    final class Probe: Sendable {
        private let batchList = Mutex<[[Int]]>([])
        private let gates = Mutex<[Int: Gate]>([:])
        private let failing: Set<Int>

        /// - Parameter failing: the items `run` answers with ``Failure``.
        init(failing: Set<Int> = []) {
            self.failing = failing
        }

        var batches: [[Int]] { batchList.withLock { $0 } }

        /// Makes the batch led by `item` wait in `run` until the returned gate opens.
        func hold(batchLedBy item: Int) -> Gate {
            let gate = Gate()
            gates.withLock { $0[item] = gate }
            return gate
        }

        /// A `run` that records its batch, waits at its gate if any, and answers `item * 10`,
        /// or ``Failure`` for the failing items.
        func run(_ items: [Int]) async -> [Result<Int, any Error>] {
            batchList.withLock { $0.append(items) }
            if let gate = gates.withLock({ $0[items[0]] }) { await gate.wait() }
            return items.map { failing.contains($0) ? .failure(Failure(item: $0)) : .success($0 * 10) }
        }
    }

    @TaskLocal static var caller: Int?

    /// Submits `item` from a task of its own, and returns once it is queued behind the running batch.
    func queue(_ item: Int, on batcher: Batcher<Int, Int>, probe: Probe) async throws -> Task<Int, any Error> {
        let queuedBefore = batcher.waiting
        let task = Task { try await batcher.submit(item) { await probe.run($0) } }
        try await waitUntil { batcher.waiting == queuedBefore + 1 }
        return task
    }

    /// Starts the batch led by `item` in a task of its own and returns once `run` holds it at its gate.
    func lead(_ item: Int, on batcher: Batcher<Int, Int>, probe: Probe) async throws -> (Task<Int, any Error>, Gate) {
        let gate = probe.hold(batchLedBy: item)
        let seen = probe.batches.count
        let task = Task { try await batcher.submit(item) { await probe.run($0) } }
        try await waitUntil { probe.batches.count == seen + 1 }
        return (task, gate)
    }

    @Test func aLoneCallerLeadsItsOwnBatchInItsOwnTask() async throws {
        let batcher = Batcher<Int, Int>()
        let output = try await Self.$caller.withValue(7) {
            try await batcher.submit(7) { items in
                // The caller's task-local is visible: the caller ran its batch itself, no hand-off.
                #expect(Self.caller == 7)
                return items.map { .success($0 * 10) }
            }
        }
        #expect(output == 70)
        #expect(batcher.waiting == 0)
    }

    @Test func itemsRunInArrivalOrderAndBatchesOneAfterAnother() async throws {
        let batcher = Batcher<Int, Int>()
        let probe = Probe()
        let (first, firstGate) = try await lead(0, on: batcher, probe: probe)
        let secondGate = probe.hold(batchLedBy: 1)
        var tasks = [first]
        for item in 1...3 { tasks.append(try await queue(item, on: batcher, probe: probe)) }
        firstGate.open()
        // Item 1 leads the queue as one batch; what arrives meanwhile waits for the batch after it.
        try await waitUntil { probe.batches.count == 2 }
        for item in 4...5 { tasks.append(try await queue(item, on: batcher, probe: probe)) }
        secondGate.open()
        var outputs: [Int] = []
        for task in tasks { outputs.append(try await task.value) }
        #expect(probe.batches == [[0], [1, 2, 3], [4, 5]])
        #expect(outputs == [0, 10, 20, 30, 40, 50])
    }

    @Test func eachCallerGetsItsOwnOutcomeAndAFailingItemFailsAlone() async throws {
        let batcher = Batcher<Int, Int>()
        let probe = Probe(failing: [2])
        let (first, gate) = try await lead(0, on: batcher, probe: probe)
        var tasks: [Int: Task<Int, any Error>] = [:]
        for item in 1...3 { tasks[item] = try await queue(item, on: batcher, probe: probe) }
        gate.open()
        #expect(try await first.value == 0)
        #expect(try await tasks[1]!.value == 10)
        await #expect(throws: Failure(item: 2)) { try await tasks[2]!.value }
        #expect(try await tasks[3]!.value == 30)
        #expect(probe.batches == [[0], [1, 2, 3]])
    }

    @Test func aFailingBatchFailsEveryCallerInItAndTheNextBatchStillRuns() async throws {
        struct CommitFailed: Error, Equatable {}
        let batcher = Batcher<Int, Int>()
        let probe = Probe()
        let (first, gate) = try await lead(0, on: batcher, probe: probe)
        var failing: [Task<Int, any Error>] = []
        for item in 1...3 {
            let queuedBefore = batcher.waiting
            failing.append(Task {
                try await batcher.submit(item) { items in
                    _ = await probe.run(items)
                    throw CommitFailed()
                }
            })
            try await waitUntil { batcher.waiting == queuedBefore + 1 }
        }
        gate.open()
        #expect(try await first.value == 0)
        for task in failing {
            await #expect(throws: CommitFailed()) { try await task.value }
        }
        #expect(try await batcher.submit(4) { await probe.run($0) } == 40)
        #expect(probe.batches == [[0], [1, 2, 3], [4]])
    }

    @Test func aThousandConcurrentCallersEachCompleteOnce() async throws {
        let batcher = Batcher<Int, Int>()
        let probe = Probe()
        let outputs = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for item in 0..<1_000 {
                group.addTask { (item, try await batcher.submit(item) { await probe.run($0) }) }
            }
            var outputs: [(Int, Int)] = []
            for try await pair in group { outputs.append(pair) }
            return outputs
        }
        #expect(outputs.count == 1_000)
        #expect(outputs.allSatisfy { item, output in output == item * 10 })
        #expect(probe.batches.flatMap { $0 }.sorted() == Array(0..<1_000), "every item ran exactly once")
        #expect(batcher.waiting == 0)
        // Nobody kept the lead: the next caller runs at once.
        #expect(try await batcher.submit(1_000) { await probe.run($0) } == 10_000)
        #expect(probe.batches.last == [1_000])
    }

    @Test func aCancelledCallerStillGetsItsItemsTrueOutcome() async throws {
        let batcher = Batcher<Int, Int>()
        let probe = Probe(failing: [2])
        let (first, firstGate) = try await lead(0, on: batcher, probe: probe)
        let secondGate = probe.hold(batchLedBy: 1)
        let leader = try await queue(1, on: batcher, probe: probe)
        let follower = try await queue(2, on: batcher, probe: probe)
        firstGate.open()
        try await waitUntil { probe.batches.count == 2 }
        // Cancelled once their items were taken into the running batch, as its leader and a follower.
        leader.cancel()
        follower.cancel()
        // Cancelled while still queued: its item is not withdrawn but runs in the next batch.
        let queued = try await queue(3, on: batcher, probe: probe)
        queued.cancel()
        secondGate.open()
        #expect(try await first.value == 0)
        #expect(try await leader.value == 10)
        await #expect(throws: Failure(item: 2)) { try await follower.value }
        #expect(try await queued.value == 30)
        #expect(probe.batches == [[0], [1, 2], [3]])
    }

    @Test func theBatchDurationIsRecordedOncePerBatch() async throws {
        let metrics = TestMetrics()
        let batcher = Batcher<Int, Int>(
            batchDuration: CoreMetrics.Timer(label: "edda_commit_duration_seconds", dimensions: [("backend", "test")], factory: metrics)
        )
        let probe = Probe()
        let (first, gate) = try await lead(0, on: batcher, probe: probe)
        let queued = [try await queue(1, on: batcher, probe: probe), try await queue(2, on: batcher, probe: probe)]
        gate.open()
        _ = try await first.value
        for task in queued { _ = try await task.value }
        #expect(probe.batches.count == 2)
        #expect(try metrics.expectTimer("edda_commit_duration_seconds", [("backend", "test")]).values.count == 2)
    }
}
