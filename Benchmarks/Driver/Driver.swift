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
import PostgresNIO
import ServiceLifecycle
import Synchronization

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda-bench",
        abstract: "Edda's benchmark driver: one JSON line per workload.",
        subcommands: [All.self, W1.self, W2.self, W3.self, W3Worker.self, W4.self, W5.self, WQ.self, PostgresFloor.self],
        defaultSubcommand: All.self
    )
}

struct Common: ParsableArguments {
    @Option(help: "SQLite durability: full or normal.")
    var durability = "full"

    @Option(help: "A SQLite file (a fresh temporary one by default), or a postgres://user@host:port/db URL to run on PostgreSQL in a fresh schema.")
    var database: String?

    @Option(help: "SQLite page cache per connection in KiB; SQLite's default (2048) when absent.")
    var pageCacheKib: Int?

    @Option(help: "PostgreSQL: the schema to use (a fresh one by default).")
    var schema: String?

    @Option(help: "PostgreSQL: the lease duration in milliseconds (the app's default, 15000, when absent).")
    var leaseMs: Int?
    @Option(help: "PostgreSQL: the store's write connections (writeConnections; the store's default when not given).")
    var writeConnections: Int?

    @Option(help: "on: metrics, spans and hooks go to the backends bootstrapped (none here: the no-op ones), as in an app; off: not reported at all.")
    var instrumentation = "on"

    var isPostgres: Bool { database.map { $0.hasPrefix("postgres://") || $0.hasPrefix("postgresql://") } ?? false }

    /// The backend, as reported in each JSON line.
    var backend: String { isPostgres ? "postgres" : "sqlite" }

    var sqliteDurability: SQLiteStore.Durability { durability.lowercased() == "normal" ? .normal : .full }

    /// The database to open: the SQLite file or PostgreSQL URL given, or a fresh one; for
    /// PostgreSQL, with the schema every process of the run shares.
    func resolved() throws -> Common {
        var copy = self
        if isPostgres {
            copy.schema = schema ?? "edda_bench_\(UUID().uuidString.prefix(8).lowercased())"
        } else if database == nil {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-bench-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            copy.database = directory.appendingPathComponent("bench.sqlite").path
        }
        return copy
    }

    /// The arguments that open the same database in a child process.
    var childArguments: [String] {
        ["--database", database ?? "", "--durability", durability] + (schema.map { ["--schema", $0] } ?? [])
            + (leaseMs.map { ["--lease-ms", "\($0)"] } ?? []) + (writeConnections.map { ["--write-connections", "\($0)"] } ?? [])
    }

    static let logger: Logger = {
        var logger = Logger(label: "edda.bench")
        logger.logLevel = .error
        return logger
    }()

    func makeStore() throws -> any Store {
        if isPostgres, let database {
            var configuration = try PostgresStore.Configuration(url: database)
            configuration.schema = schema ?? "edda_bench"
            configuration.maximumConnections = 40
            if let writeConnections { configuration.writeConnections = writeConnections }
            return try PostgresStore(configuration: configuration, logger: Self.logger)
        }
        var configuration = SQLiteStore.Configuration()
        configuration.durability = sqliteDurability
        configuration.pageCacheKiB = pageCacheKib
        return try SQLiteStore(path: database ?? "bench.sqlite", configuration: configuration, logger: Self.logger)
    }

    func makeApp(store: any Store) -> EddaApp {
        var configuration = EddaApp.Configuration()
        configuration.instrumentation = instrumentation != "off"
        if let leaseMs {
            configuration.leaseDuration = .milliseconds(leaseMs)
            configuration.leaseRenewalInterval = .milliseconds(max(leaseMs / 3, 1))
        }
        return EddaApp(store: store, serviceName: "bench", configuration: configuration, logger: Self.logger)
    }

    func makeApp() throws -> EddaApp {
        makeApp(store: try makeStore())
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

/// The same on PostgreSQL: an async body on the step's `PostgresConnection`, into `schema.bench_rows`.
func sequentialTransactionalPostgres(schema: String) -> Workflow<Int, Int> {
    let table = "\"\(schema)\".bench_rows"
    let insertRow = Activity("insert_row", retry: .noRetry) { (ctx, index: Int) -> Int in
        let key = ctx.idempotencyKey
        try await ctx.transaction { conn in
            try await conn.query("INSERT INTO \(unescaped: table) (key, value) VALUES (\(key), \(index))", logger: ctx.logger)
        }
        return index
    }
    return stepsInSequence("sequential_transactional", insertRow)
}

// MARK: - Measuring

/// How many instances wait released until a deadline.
func parkedCount(_ store: any Store) async throws -> Int {
    if let store = store as? PostgresStore {
        let rows = try await store.client.query(
            PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \"\(store.configuration.schema)\".workflow_instances WHERE ready_at IS NOT NULL")
        )
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
    return try await (store as! SQLiteStore).writer.read { db in
        try Int.fetchOne(db, sql: "SELECT count(*) FROM workflow_instances WHERE ready_at IS NOT NULL") ?? 0
    }
}

/// The process's peak resident memory (VmHWM), in MB.
func peakRSSMegabytes() -> Double { statusMegabytes("VmHWM:") }

/// The process's resident memory now (VmRSS), in MB.
func currentRSSMegabytes() -> Double { statusMegabytes("VmRSS:") }

/// A memory figure from /proc/self/status, in MB (-1 when unavailable).
func statusMegabytes(_ key: String) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in status.split(separator: "\n") where line.hasPrefix(key) {
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
        let common = try self.common.resolved()
        let app = try common.makeApp()
        let sequential = !transactional ? sequential
            : common.isPostgres ? sequentialTransactionalPostgres(schema: common.schema ?? "") : sequentialTransactional
        try app.register(sequential)
        let (workflows, steps, concurrency) = (self.workflows, self.steps, self.concurrency)
        let clock = ContinuousClock()
        let transactional = self.transactional
        let (elapsed, latencies) = try await app.run { app in
            if transactional { try await createBenchRows(app.store) }
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
            "instrumentation": common.instrumentation,
        ])
    }
}

/// W2: 3-step workflows one after another; latency from start to result.
struct W2: AsyncParsableCommand {
    @OptionGroup var common: Common
    @Option var workflows = 2_000

    func run() async throws {
        let common = try self.common.resolved()
        let app = try common.makeApp()
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

/// W4: many instances waiting on durable timers — the process's memory while they wait, and how
/// late timers fire among them.
struct W4: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "w4", abstract: "Waiting instances: memory with N parked on a timer, then timer lateness."
    )
    @OptionGroup var common: Common
    @Option(help: "Instances parked on a one-hour timer.") var waiting = 100_000
    @Option(help: "Instances whose timers are measured, started after the parked ones.") var timers = 200
    @Option(help: "Milliseconds between the measured timers' deadlines (0: all at once, a herd).") var spacingMs = 20
    @Option var concurrency = 64

    func run() async throws {
        let common = try self.common.resolved()
        var configuration = EddaApp.Configuration()
        configuration.maxInMemoryWait = .zero
        let app = EddaApp(store: try common.makeStore(), serviceName: "bench", configuration: configuration, logger: Common.logger)
        // Wakes at the deadline (milliseconds since 1970) and returns how late it ran, by its clock.
        let late = Activity("late", retry: .noRetry) { (ctx, deadline: Int64) -> Double in
            Date().timeIntervalSince1970 * 1000 - Double(deadline)
        }
        let waiter = Workflow("waiter") { (ctx, deadline: Int64) -> Double in
            try await ctx.sleep(until: Date(timeIntervalSince1970: Double(deadline) / 1000))
            return try await late(ctx, deadline)
        }
        try app.register(waiter)
        let (waiting, timers, concurrency, spacing) = (self.waiting, self.timers, self.concurrency, Int64(self.spacingMs))
        let clock = ContinuousClock()
        let report = try await app.run { app -> [String: Double] in
            let started = clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<waiting {
                    if index >= concurrency { try await group.next() }
                    let inAnHour = Int64((Date().timeIntervalSince1970 + 3600) * 1000)
                    group.addTask { _ = try await app.start(waiter, inAnHour, instanceID: "parked-\(index)") }
                }
                try await group.waitForAll()
            }
            // Every parked run ends as waiting and releases its instance with its deadline; some were
            // created ready (the worker was full) and run later: wait until every one is parked.
            while try await parkedCount(app.store) < waiting { try await Task.sleep(for: .milliseconds(100)) }
            let parkSeconds = seconds(started.duration(to: clock.now))
            let rssWaiting = currentRSSMegabytes()

            // Timers among the parked instances, 2 s ahead and `spacing` apart: how late does each
            // resume (its next step starts), past its deadline?
            let first = Int64((Date().timeIntervalSince1970 + 2) * 1000)
            for index in 0..<timers {
                _ = try await app.start(waiter, first + Int64(index) * spacing, instanceID: "timed-\(index)")
            }
            var lateness: [Double] = []
            for index in 0..<timers {
                lateness.append(try await app.handle(for: waiter, instanceID: "timed-\(index)").result())
            }
            lateness.sort()
            return [
                "park_s": (parkSeconds * 10).rounded() / 10, "rss_waiting_mb": rssWaiting,
                "timer_late_p50_ms": percentile(lateness, 0.5), "timer_late_p99_ms": percentile(lateness, 0.99),
            ]
        }
        var fields: [String: Any] = report
        fields.merge([
            "workload": "W4", "waiting": waiting, "timers": timers, "spacing_ms": spacing, "peak_rss_mb": peakRSSMegabytes(),
            "backend": common.backend,
            "durability": common.sqliteDurability.description,
        ]) { $1 }
        emit(fields)
    }
}


/// W5: how soon an event wakes the instance waiting for it — from the `sendEvent` call to the
/// instance's next step. On SQLite the sender is the worker's own app (in-process); on PostgreSQL it
/// is a second app on a store of its own (its own pool and LISTEN connection), so the wake-up goes
/// through NOTIFY as it would from another process.
struct W5: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "w5", abstract: "Event wake-up: sendEvent to the waiter's next step.")
    @OptionGroup var common: Common
    @Option(help: "Waiting instances, each sent one event.") var events = 200
    @Option(help: "Milliseconds between events (0: one after another, as fast as they go).") var spacingMs = 5
    @Option(help: "Waiters started at once (raise it to park many).") var startConcurrency = 1
    @Option(help: "Events sent at once, as from concurrent webhook requests (1: one after another).") var sendConcurrency = 1

    func run() async throws {
        let common = try self.common.resolved()
        let app = common.makeApp(store: try common.makeStore())
        let sender = common.isPostgres ? common.makeApp(store: try common.makeStore()) : app
        // Returns how long after the send (milliseconds since 1970, the event's data) it ran.
        let woken = Activity("woken", retry: .noRetry) { (ctx, sentAt: Double) -> Double in
            Date().timeIntervalSince1970 * 1000 - sentAt
        }
        let waiter = Workflow("event_waiter") { (ctx, _: Int) -> Double in
            let event = try await ctx.waitForEvent(type: "bench.ping", as: Double.self)
            return try await woken(ctx, event.data)
        }
        try app.register(waiter)
        let (events, spacing, startConcurrency) = (self.events, self.spacingMs, max(1, self.startConcurrency))
        let sendConcurrency = max(1, self.sendConcurrency)
        let clock = ContinuousClock()
        struct Measured: Sendable {
            var latencies: [Double]
            var sends: [Double]
            var sending: Duration
            var delivering: Duration
        }
        @Sendable func measure(_ app: EddaApp, _ sender: EddaApp) async throws -> Measured {
            try await withThrowingTaskGroup(of: Void.self) { group in
                var started = 0
                func launch() {
                    let index = started
                    group.addTask { _ = try await app.start(waiter, index, instanceID: "waiter-\(index)") }
                    started += 1
                }
                while started < min(startConcurrency, events) { launch() }
                while try await group.next() != nil { if started < events { launch() } }
            }
            // Every instance waits, released, before the first event.
            while try await app.store.statusCounts(matching: InstanceQuery(workflowName: "event_waiter"))[.waiting, default: 0] < events {
                try await Task.sleep(for: .milliseconds(50))
            }
            // Sender k sends to waiters k, k + senders, …; a send's cost is kept at its waiter's index.
            let began = clock.now
            let sends = try await withThrowingTaskGroup(of: [(Int, Double)].self) { group in
                for first in 0..<sendConcurrency {
                    group.addTask {
                        var costs: [(Int, Double)] = []
                        for index in stride(from: first, to: events, by: sendConcurrency) {
                            let event = try CloudEvent(type: "bench.ping", source: "/bench", json: Date().timeIntervalSince1970 * 1000)
                            let sent = clock.now
                            try await sender.sendEvent(event, to: "waiter-\(index)")
                            costs.append((index, seconds(sent.duration(to: clock.now)) * 1000))
                            if spacing > 0 { try await Task.sleep(for: .milliseconds(spacing)) }
                        }
                        return costs
                    }
                }
                var all: [(Int, Double)] = []
                for try await costs in group { all += costs }
                return all.sorted { $0.0 < $1.0 }.map(\.1)
            }
            let sending = began.duration(to: clock.now)
            let handles = (0..<events).map { app.handle(for: waiter, instanceID: "waiter-\($0)") }
            var latencies: [Double] = []
            for handle in handles { latencies.append(try await handle.result()) }
            return Measured(latencies: latencies.sorted(), sends: sends, sending: sending, delivering: began.duration(to: clock.now))
        }
        let measured = try await app.run { app in
            sender === app ? try await measure(app, app) : try await sender.run { sender in try await measure(app, sender) }
        }
        // A send's cost while nearly every instance still waits, and once nearly none does.
        let tail = max(1, min(100, events / 10))
        emit([
            "workload": "W5", "events": events, "spacing_ms": spacing, "send_concurrency": sendConcurrency, "wake_p50_ms": percentile(measured.latencies, 0.5),
            "wake_p99_ms": percentile(measured.latencies, 0.99), "peak_rss_mb": peakRSSMegabytes(), "backend": common.backend,
            "durability": common.sqliteDurability.description,
            "send_p50_ms": percentile(measured.sends.sorted(), 0.5),
            "send_p50_first_ms": percentile(measured.sends.prefix(tail).sorted(), 0.5),
            "send_p50_last_ms": percentile(measured.sends.suffix(tail).sorted(), 0.5),
            "sends_per_s": Int(Double(events) / seconds(measured.sending)),
            "deliveries_per_s": Int(Double(events) / seconds(measured.delivering)),
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
        let clock = ContinuousClock()
        let began = clock.now
        let app = try common.makeApp()
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
        let common = try self.common.resolved()
        let store = try common.makeStore()
        let total = workflows * steps
        let base = ["w3-worker", "--workflows", "\(workflows)", "--steps", "\(steps)"] + common.childArguments
        try await withStoreRunning(store) {
            try await measure(store, common: common, total: total, base: base)
        }
    }

    func measure(_ store: any Store, common: Common, total: Int, base: [String]) async throws {
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
        let completed = try await store.statusCounts(matching: InstanceQuery())[.completed] ?? 0
        emit([
            "workload": "W3", "workflows": workflows, "steps_per_workflow": steps,
            "killed_with": "SIGKILL", "recorded_at_kill": recordedAtKill,
            "restart_to_all_complete_s": (recovery * 1000).rounded() / 1000,
            "worker_restart_to_all_complete_s": ((report["worker_elapsed_s"] as? Double ?? -1) * 1000).rounded() / 1000,
            "completed": completed,
            // Every step not recorded at the kill runs once after the restart; anything more re-ran a recorded step.
            "reexecuted_recorded_steps": executedAfter - (total - recordedAtKill),
            "peak_rss_mb": report["peak_rss_mb"] ?? -1, "durability": common.sqliteDurability.description, "backend": common.backend,
            "lease_ms": common.isPostgres ? (common.leaseMs ?? 15_000) : 0,
        ])
    }

    func recordedSteps(_ store: any Store) async throws -> Int {
        if let store = store as? PostgresStore {
            try await store.ready()
            let rows = try await store.client.query(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \"\(store.configuration.schema)\".workflow_history"))
            for try await count in rows.decode(Int64.self) { return Int(count) }
            return 0
        }
        let sqlite = store as! SQLiteStore
        return try await sqlite.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM workflow_history") ?? 0 }
    }
}

/// Runs `body` with the store's service running when it is one (PostgreSQL's pool).
func withStoreRunning<T: Sendable>(_ store: any Store, _ body: @Sendable () async throws -> T) async throws -> T {
    guard let service = store as? any Service else { return try await body() }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await service.run()
            return nil
        }
        defer { group.cancelAll() }
        return try await body()
    }
}

/// The user table of `--transactional` runs; on PostgreSQL, once the store runs.
func createBenchRows(_ store: any Store) async throws {
    if let store = store as? PostgresStore {
        try await store.ready()
        try await store.client.query(
            PostgresQuery(unsafeSQL: "CREATE TABLE \"\(store.configuration.schema)\".bench_rows (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        )
        return
    }
    try await (store as! SQLiteStore).writer.write { db in
        try db.execute(sql: "CREATE TABLE bench_rows (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)")
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
    @Option(help: "A postgres:// URL to run every workload on PostgreSQL instead (a fresh schema each).") var database: String?

    func run() async throws {
        if let database {
            let runs: [[String]] = [
                ["w1", "--concurrency", "1", "--workflows", "\(workflows / 4)"],
                ["w1", "--concurrency", "32", "--workflows", "\(workflows)"],
                ["w1", "--concurrency", "32", "--workflows", "\(workflows)", "--transactional"],
                ["w2", "--workflows", "\(workflows / 4)"],
                ["w3", "--lease-ms", "2000"],
            ]
            for run in runs {
                let process = try launchSelf(run + ["--database", database], output: nil)
                process.waitUntilExit()
            }
            return
        }
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

/// The driver's floor: `count` one-row autocommit INSERTs in a row through `PostgresClient`, as a
/// step's record is, with nothing of Edda around them. What W2 and W1 C=1 compare with.
struct PostgresFloor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pg-floor", abstract: "Sequential one-row INSERTs through PostgresNIO alone.")
    @Option var database: String
    @Option var count = 2_000
    @Flag(help: "Use a prepared statement (parsed once per connection).") var prepared = false
    @Option(help: "The pool's timers: 'on' (PostgresNIO's defaults: a keep-alive and an idle timer armed at every release) or 'off' (no keep-alive; minimumConnections 1, so the connection in use has no idle timer).")
    var poolTimers = "on"

    struct Insert: PostgresPreparedStatement {
        static let sql = "INSERT INTO t (k, v) VALUES ($1, 'value')"
        typealias Row = ()
        var key: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings()
            bindings.append(key)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Row {}
    }

    func run() async throws {
        let schema = "edda_floor_\(UUID().uuidString.prefix(8).lowercased())"
        var configuration = try PostgresStore.Configuration(url: database).client
        configuration.options.additionalStartupParameters = [("options", "-c search_path=\(schema)")]
        if poolTimers == "off" {
            configuration.options.keepAliveBehavior = nil
            configuration.options.minimumConnections = 1
        }
        let client = PostgresClient(configuration: configuration, backgroundLogger: Common.logger)
        let prepared = self.prepared
        let count = self.count
        let clock = ContinuousClock()
        let latencies = try await withThrowingTaskGroup(of: [Double]?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"))
            try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE \(schema).t (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, v TEXT)"))
            var latencies: [Double] = []
            for index in 0..<count {
                let began = clock.now
                if prepared {
                    _ = try await client.execute(Insert(key: "key-\(index)"))
                } else {
                    try await client.query("INSERT INTO \(unescaped: schema).t (k, v) VALUES (\("key-\(index)"), 'value')")
                }
                latencies.append(seconds(began.duration(to: clock.now)) * 1000)
            }
            try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE"))
            return latencies
        }
        let sorted = latencies.sorted()
        emit([
            "workload": "pg-floor", "inserts": count, "backend": "postgres", "prepared": prepared, "pool_timers": poolTimers,
            "inserts_per_s": Int(Double(count) / (sorted.reduce(0, +) / 1000)),
            "p50_ms": percentile(sorted, 0.5), "p99_ms": percentile(sorted, 0.99),
        ])
    }
}
