// ordo-one/benchmark suites. Enabled only when ENABLE_EDDA_BENCHMARKS is set, so users of the
// package never resolve the benchmark dependency:
//
//   ENABLE_EDDA_BENCHMARKS=1 swift package benchmark
//
// The comparable, human-readable figures (steps/s, p50/p99, RSS) come from `edda-bench`; these
// suites track instructions, allocations and throughput per operation across commits.

@preconcurrency import Benchmark
import Edda
import EddaSQLite
import Foundation
import Logging

let noop = Activity("noop", retry: .noRetry) { (ctx, index: Int) -> Int in index }

let tenSteps = Workflow("ten_steps") { (ctx, steps: Int) -> Int in
    var total = 0
    for index in 0..<steps {
        total += try await noop(ctx, index)
    }
    return total
}

func quietLogger() -> Logger {
    Logger(label: "edda.benchmark", factory: { _ in SwiftLogNoOpLogHandler() })
}

func temporaryDatabase() throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-benchmark-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory.appendingPathComponent("bench.sqlite").path
}

/// Runs the app's service in a child task while `body` runs in this one (the `Benchmark` object is
/// not `Sendable`, so it must stay out of the app's `run(_:)` closure).
func withRunning(_ app: EddaApp, _ body: () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        try await body()
        group.cancelAll()
    }
}

let benchmarks: @Sendable () -> Void = {
    // Tolerances for `thresholds check`, in percent of the checked-in p90: allocations are
    // deterministic and held tight; time depends on the disk's fsync latency and is held loosely.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .instructions, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(3),
        maxIterations: 1_000,
        thresholds: [
            .mallocCountTotal: .init(relative: [.p90: 5]),
            .peakMemoryResident: .init(relative: [.p90: 10]),
            .wallClock: .init(relative: [.p90: 50]),
            .throughput: .init(relative: [.p90: 50]),
        ]
    )

    // W1, C = 1: one workflow of 10 trivial steps at a time, every commit fsync'd.
    Benchmark("W1_C1_workflow_of_10_steps_FULL") { benchmark in
        let app = EddaApp(store: try SQLiteStore(path: try temporaryDatabase(), logger: quietLogger()), serviceName: "bench", logger: quietLogger())
        try app.register(tenSteps)
        try await withRunning(app) {
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try await app.start(tenSteps, 10).result())
            }
            benchmark.stopMeasurement()
        }
    }

    // W1, C = 32: 320 workflows of 10 steps, 32 in flight; step records share commits.
    Benchmark("W1_C32_320_workflows_of_10_steps_FULL", configuration: .init(maxIterations: 20)) { benchmark in
        let app = EddaApp(store: try SQLiteStore(path: try temporaryDatabase(), logger: quietLogger()), serviceName: "bench", logger: quietLogger())
        try app.register(tenSteps)
        try await withRunning(app) {
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<32 {
                        group.addTask {
                            var total = 0
                            for _ in 0..<10 { total += try await app.start(tenSteps, 10).result() }
                            return total
                        }
                    }
                    try await group.waitForAll()
                }
            }
            benchmark.stopMeasurement()
        }
    }

    // Replay: resume an instance whose 100 steps are all recorded (in memory: replay cost only).
    Benchmark("Replay_100_recorded_steps_in_memory", configuration: .init(maxIterations: 200)) { benchmark in
        for _ in benchmark.scaledIterations {
            let store = try SQLiteStore.inMemory(logger: quietLogger())
            let outcome = try await store.createInstance(
                NewInstance(instanceID: "r", workflowName: "ten_steps", serviceName: "bench", input: JSONPayload(json: "[100]")),
                leasedTo: LeaseRequest(owner: "old", duration: .seconds(60))
            )
            guard case .created(_, let lease?) = outcome else { fatalError("the instance exists already") }
            for index in 0..<100 {
                try await store.append(
                    HistoryEvent(
                        instanceID: "r", stepID: "noop:\(index + 1)", position: index + 1, name: "noop", kind: .activityCompleted,
                        payload: JSONPayload(json: "\(index)")
                    ),
                    lease: lease
                )
            }
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "bench", logger: quietLogger())
            try app.register(tenSteps)
            try await withRunning(app) {
                benchmark.startMeasurement()
                blackHole(try await app.handle(for: tenSteps, instanceID: "r").result())
                benchmark.stopMeasurement()
            }
        }
    }
}
