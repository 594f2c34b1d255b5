import ArgumentParser
import Edda
import EddaSQLite
import Foundation
import Synchronization

/// WQ: N instances started on one queue of concurrency C, their priorities cycling 0…P-1, as fast as
/// `--start-concurrency` starts go. Reports the throughput, the most instances seen inside a step at
/// once (never more than C), and per priority how long its instances waited queued (from the start's
/// return to their first step): with a backlog, lower numbers should wait less.
struct WQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wq", abstract: "A queue: throughput at a concurrency limit, and the wait of each priority."
    )
    @OptionGroup var common: Common
    @Option var instances = 10_000
    @Option(help: "The queue's concurrency across all workers.") var concurrency = 5
    @Option(help: "Priorities 0…N-1, assigned in turn.") var priorities = 3
    @Option(help: "Steps per workflow.") var steps = 1
    @Option(help: "Starts in flight at once.") var startConcurrency = 32

    /// When each instance was started (start returned), and when its first step began.
    final class Timeline: Sendable {
        private let state = Mutex<(started: [Int: ContinuousClock.Instant], firstStep: [Int: ContinuousClock.Instant], inside: Int, most: Int)>(
            ([:], [:], 0, 0)
        )
        func started(_ index: Int) { state.withLock { $0.started[index] = .now } }
        func enter(_ index: Int) {
            state.withLock { state in
                if state.firstStep[index] == nil { state.firstStep[index] = .now }
                state.inside += 1
                state.most = max(state.most, state.inside)
            }
        }
        func leave() { state.withLock { $0.inside -= 1 } }
        var most: Int { state.withLock { $0.most } }
        /// Milliseconds each instance waited, by index.
        var waits: [Int: Double] {
            state.withLock { state in
                state.firstStep.reduce(into: [:]) { waits, entry in
                    if let started = state.started[entry.key] { waits[entry.key] = seconds(entry.value - started) * 1000 }
                }
            }
        }
    }

    func run() async throws {
        let common = try self.common.resolved()
        let app = try common.makeApp()
        let queue = Queue("bench", concurrency: concurrency)
        let timeline = Timeline()
        let step = Activity("queued_step", retry: .noRetry) { (ctx, index: Int) -> Int in
            timeline.enter(index)
            defer { timeline.leave() }
            return index
        }
        let workflow = Workflow("queued_steps") { (ctx, index: Int, steps: Int) -> Int in
            for _ in 0..<steps { _ = try await step(ctx, index) }
            return index
        }
        try app.register(workflow)
        app.register(queue)
        let (instances, priorities, steps, startConcurrency) = (self.instances, self.priorities, self.steps, self.startConcurrency)
        let clock = ContinuousClock()
        let (elapsed, startElapsed) = try await app.run { app in
            let begin = clock.now
            var handles: [WorkflowHandle<Int>] = []
            handles.reserveCapacity(instances)
            try await withThrowingTaskGroup(of: WorkflowHandle<Int>.self) { group in
                var next = 0
                func launch() {
                    let index = next
                    group.addTask {
                        let handle = try await app.start(workflow, index, steps, on: queue, priority: index % priorities)
                        timeline.started(index)
                        return handle
                    }
                    next += 1
                }
                while next < min(startConcurrency, instances) { launch() }
                while let handle = try await group.next() {
                    handles.append(handle)
                    if next < instances { launch() }
                }
            }
            let startElapsed = seconds(begin.duration(to: clock.now))
            for handle in handles { _ = try await handle.result() }
            return (seconds(begin.duration(to: clock.now)), startElapsed)
        }
        let waits = timeline.waits
        var byPriority: [String: Any] = [:]
        for priority in 0..<priorities {
            let sorted = waits.filter { $0.key % priorities == priority }.map(\.value).sorted()
            byPriority["\(priority)"] = ["p50_wait_ms": percentile(sorted, 0.5), "p99_wait_ms": percentile(sorted, 0.99), "instances": sorted.count]
        }
        emit([
            "workload": "WQ", "instances": instances, "queue_concurrency": concurrency, "priorities": priorities, "steps_per_workflow": steps,
            "elapsed_s": (elapsed * 1000).rounded() / 1000, "starts_elapsed_s": (startElapsed * 1000).rounded() / 1000,
            "workflows_per_s": Int(Double(instances) / elapsed), "steps_per_s": Int(Double(instances * steps) / elapsed),
            "most_inside_a_step": timeline.most, "by_priority": byPriority,
            "peak_rss_mb": peakRSSMegabytes(), "durability": common.sqliteDurability.description, "backend": common.backend,
        ])
    }
}
