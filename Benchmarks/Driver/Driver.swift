// edda-bench: the benchmark driver. Prints one JSON line per workload, so figures compare with
// other frameworks' drivers. Each workload runs in a child process of its own, so peak RSS is
// the workload's.
//
//   swift run -c release edda-bench                      # every workload, FULL durability, then NORMAL
//   swift run -c release edda-bench w1 --concurrency 32  # one workload

#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Edda
import EddaPostgres
import EddaSQLite
import Foundation
import GRDB
import Logging
import Synchronization

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda-bench",
        abstract: "Edda's benchmark driver: one JSON line per workload.",
        subcommands: [All.self, W1.self, W2.self, W3.self, W3Worker.self],
        defaultSubcommand: All.self
    )
}

struct Common: ParsableArguments {
    @Option(help: "SQLite durability: full or normal.")
    var durability = "full"

    @Option(help: "The database file; a fresh temporary file by default.")
    var database: String?

    @Option(help: "SQLite page cache per connection in KiB; SQLite's default (2048) when absent.")
    var pageCacheKib: Int?

    @Option(help: "Run on PostgreSQL at this URL (postgres://user@host:port/db) instead of SQLite, in a fresh schema.")
    var postgres: String?

    /// The backend, as reported in each JSON line.
    var backend: String { postgres == nil ? "sqlite" : "postgres" }

    var sqliteDurability: SQLiteStore.Durability { durability.lowercased() == "normal" ? .normal : .full }

    func databasePath() throws -> String {
        if let database { return database }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("bench.sqlite").path
    }

    func makeApp(path: String) throws -> EddaApp {
        var logger = Logger(label: "edda.bench")
        logger.logLevel = .error
        if let postgres {
            var configuration = try PostgresStore.Configuration(url: postgres)
            configuration.schema = "edda_bench_\(UUID().uuidString.prefix(8).lowercased())"
            configuration.maximumConnections = 40
            return EddaApp(store: try PostgresStore(configuration: configuration, logger: logger), serviceName: "bench", logger: logger)
        }
        var configuration = SQLiteStore.Configuration()
        configuration.durability = sqliteDurability
        configuration.pageCacheKiB = pageCacheKib
        return EddaApp(store: try SQLiteStore(path: path, configuration: configuration, logger: logger), serviceName: "bench", logger: logger)
    }
}

// MARK: - Workflows

let noop = Activity("noop", retry: .noRetry) { (ctx, index: Int) -> Int in index }

/// A workflow that runs `step` `steps` times in a row and sums the results.
func stepsInSequence(_ name: String, _ step: Activity<Int, Int>) -> Workflow<Int, Int> {
    Workflow(name) { (ctx, steps: Int) -> Int in
        var total = 0
        for index in 0..<steps {
            total += try await step(ctx, index)
        }
        return total
    }
}

let sequential = stepsInSequence("sequential", noop)

/// Each step also inserts a row into a user table, in the transaction that records the step.
let insertRow = Activity("insert_row", retry: .noRetry) { (ctx, index: Int) -> Int in
    let key = ctx.idempotencyKey
    try ctx.transaction { db in
        try db.execute(sql: "INSERT INTO bench_rows (key, value) VALUES (?, ?)", arguments: [key, index])
    }
    return index
}

let sequentialTransactional = stepsInSequence("sequential_transactional", insertRow)

// MARK: - Measuring

func peakRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first ?? -1
        return (kilobytes / 1024 * 10).rounded() / 10
    }
    return -1
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return (sorted[index] * 1000).rounded() / 1000
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func emit(_ fields: [String: Any]) {
    var fields = fields
    fields["framework"] = "edda-swift"
    fields["machine"] = "\(ProcessInfo.processInfo.activeProcessorCount) cores"
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    FileHandle.standardOutput.write(data + Data("\n".utf8))
}

/// W1: N workflows of `steps` trivial activities, `concurrency` in flight.
struct W1: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var workflows = 2_000
    @Option var steps = 10
    @Option var concurrency = 1
    @Flag(help: "Each step also writes a user row through ctx.transaction.") var transactional = false

    func run() async throws {
        let path = try common.databasePath()
        let app = try common.makeApp(path: path)
        let sequential = transactional ? sequentialTransactional : sequential
        if transactional {
            try await (app.store as! SQLiteStore).writer.write { db in
                try db.execute(sql: "CREATE TABLE bench_rows (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)")
            }
        }
        try app.register(sequential)
        let (workflows, steps, concurrency) = (self.workflows, self.steps, self.concurrency)
        let clock = ContinuousClock()
        let (elapsed, latencies) = try await app.run { app in
            let start = clock.now
            var latencies: [Double] = []
            latencies.reserveCapacity(workflows)
            try await withThrowingTaskGroup(of: Double.self) { group in
                var started = 0
                func launch() {
                    group.addTask {
                        let began = clock.now
                        _ = try await app.start(sequential, steps).result()
                        return seconds(began.duration(to: clock.now)) * 1000
                    }
                    started += 1
                }
                while started < min(concurrency, workflows) { launch() }
                while let latency = try await group.next() {
                    latencies.append(latency)
                    if started < workflows { launch() }
                }
            }
            return (seconds(start.duration(to: clock.now)), latencies.sorted())
        }
        emit([
            "workload": transactional ? "W1-tx" : "W1", "workflows": workflows, "steps_per_workflow": steps, "concurrency": concurrency,
            "elapsed_s": (elapsed * 1000).rounded() / 1000,
            "steps_per_s": Int(Double(workflows * steps) / elapsed),
            "workflows_per_s": Int(Double(workflows) / elapsed),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "peak_rss_mb": peakRSSMegabytes(), "durability": common.sqliteDurability.description, "backend": common.backend,
        ])
    }
}

/// W2: 3-step workflows one after another; latency from start to result.
struct W2: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var workflows = 2_000

    func run() async throws {
        let path = try common.databasePath()
        let app = try common.makeApp(path: path)
        try app.register(sequential)
        let workflows = self.workflows
        let clock = ContinuousClock()
        let (elapsed, latencies) = try await app.run { app in
            let start = clock.now
            var latencies: [Double] = []
            for _ in 0..<workflows {
                let began = clock.now
                _ = try await app.start(sequential, 3).result()
                latencies.append(seconds(began.duration(to: clock.now)) * 1000)
            }
            return (seconds(start.duration(to: clock.now)), latencies.sorted())
        }
        emit([
            "workload": "W2", "workflows": workflows, "steps_per_workflow": 3, "concurrency": 1,
            "elapsed_s": (elapsed * 1000).rounded() / 1000,
            "workflows_per_s": Int(Double(workflows) / elapsed),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "peak_rss_mb": peakRSSMegabytes(), "durability": common.sqliteDurability.description, "backend": common.backend,
        ])
    }
}

/// Counts activity executions in the W3 worker.
let executions = Atomic<Int>(0)

let countedStep = Activity("counted_step", retry: .noRetry) { (ctx, index: Int) -> Int in
    executions.add(1, ordering: .relaxed)
    try await Task.sleep(for: .milliseconds(1))
    return index
}

let countedWorkflow = stepsInSequence("counted", countedStep)

/// The W3 child: starts (or resumes) the 200 workflows and waits for all of them.
struct W3Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "w3-worker", shouldDisplay: false)
    @OptionGroup var common: Common
    @Option var workflows = 200
    @Option var steps = 10

    func run() async throws {
        let path = try common.databasePath()
        let clock = ContinuousClock()
        let began = clock.now
        let app = try common.makeApp(path: path)
        try app.register(countedWorkflow)
        let (workflows, steps) = (self.workflows, self.steps)
        try await app.run { app in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<workflows {
                    let handle = try await app.start(countedWorkflow, steps, instanceID: "w3-\(index)")
                    group.addTask { try await handle.result() }
                }
                try await group.waitForAll()
            }
        }
        emit([
            "worker_elapsed_s": seconds(began.duration(to: clock.now)),
            "executions": executions.load(ordering: .relaxed),
            "peak_rss_mb": peakRSSMegabytes(),
        ])
    }
}

/// W3: 200 workflows of 10 steps; the worker is killed with SIGKILL after about half the steps;
/// then the time from restart until all are complete, and re-executions of recorded steps.
struct W3: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var workflows = 200
    @Option var steps = 10

    func run() async throws {
        let path = try common.databasePath()
        let store = try SQLiteStore(path: path)
        let total = workflows * steps
        let base = ["w3-worker", "--database", path, "--durability", common.durability, "--workflows", "\(workflows)", "--steps", "\(steps)"]

        let first = try launchSelf(base, output: FileHandle.nullDevice)
        while try await recordedSteps(store) < total / 2 {
            try await Task.sleep(for: .milliseconds(1))
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let recordedAtKill = try await recordedSteps(store)

        let pipe = Pipe()
        let clock = ContinuousClock()
        let restarted = clock.now
        let second = try launchSelf(base, output: pipe)
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        second.waitUntilExit()
        let recovery = seconds(restarted.duration(to: clock.now))
        let report = (try? JSONSerialization.jsonObject(with: output) as? [String: Any]) ?? [:]
        let executedAfter = report["executions"] as? Int ?? -1
        let completed = try await store.statusCounts(workflowName: nil)[.completed] ?? 0
        emit([
            "workload": "W3", "workflows": workflows, "steps_per_workflow": steps,
            "killed_with": "SIGKILL", "recorded_at_kill": recordedAtKill,
            "restart_to_all_complete_s": (recovery * 1000).rounded() / 1000,
            "worker_restart_to_all_complete_s": ((report["worker_elapsed_s"] as? Double ?? -1) * 1000).rounded() / 1000,
            "completed": completed,
            // Every step not recorded at the kill runs once after the restart; anything more re-ran a recorded step.
            "reexecuted_recorded_steps": executedAfter - (total - recordedAtKill),
            "peak_rss_mb": report["peak_rss_mb"] ?? -1, "durability": common.sqliteDurability.description,
        ])
    }

    func recordedSteps(_ store: SQLiteStore) async throws -> Int {
        try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM workflow_history") ?? 0 }
    }
}

/// Runs this executable again with `arguments`; `output` nil inherits standard output.
func launchSelf(_ arguments: [String], output: Any?) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    process.arguments = arguments
    if let output { process.standardOutput = output }
    try process.run()
    return process
}

/// Every workload, each in its own process, FULL then NORMAL.
struct All: AsyncParsableCommand {
    @Option var workflows = 2_000
    @Flag(help: "Only FULL durability.") var fullOnly = false

    func run() async throws {
        for durability in fullOnly ? ["full"] : ["full", "normal"] {
            let runs: [[String]] = [
                ["w1", "--concurrency", "1", "--workflows", "\(workflows / 4)"],
                ["w1", "--concurrency", "32", "--workflows", "\(workflows)"],
                ["w1", "--concurrency", "32", "--workflows", "10000"],
                ["w1", "--concurrency", "1", "--workflows", "\(workflows / 4)", "--transactional"],
                ["w1", "--concurrency", "32", "--workflows", "\(workflows)", "--transactional"],
                ["w2", "--workflows", "\(workflows / 4)"],
                ["w3"],
            ]
            for run in runs {
                let process = try launchSelf(run + ["--durability", durability], output: nil)
                process.waitUntilExit()
            }
        }
    }
}
