#if canImport(Glibc)
import Glibc
#endif
import EddaPostgres
import Foundation
import Logging
import PostgresNIO
import Testing

// Shared by the tests that run EddaCrashWorker processes on PostgreSQL.

/// A fresh schema on the server named by `EDDA_POSTGRES_URL`, one per test.
struct PostgresTestSchema {
    let name: String
    /// The server's URL with `schema=` added, for the test's own connections.
    let url: String
    /// The URL workers get: ``url``, with `application_name=` when the test names their connections.
    let workerURL: String

    init(workersApplicationName: String? = nil) throws {
        guard let base = ProcessInfo.processInfo.environment["EDDA_POSTGRES_URL"] else {
            throw CrashTestError(message: "set EDDA_POSTGRES_URL")
        }
        name = "edda_crash_\(UUID().uuidString.prefix(8).lowercased())"
        url = base + (base.contains("?") ? "&" : "?") + "schema=\(name)"
        workerURL = url + (workersApplicationName.map { "&application_name=\($0)" } ?? "")
    }

    /// Runs `body` with a running store on the schema (its own pool), then stops the store.
    func withStore<T: Sendable>(_ body: (PostgresStore) async throws -> T) async throws -> T {
        let store = try PostgresStore(url: url, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await store.run()
                return nil
            }
            defer { group.cancelAll() }
            try await store.ready()
            return try await body(store)
        }
    }

    /// The values of a query's single column of type `T`.
    func values<T: PostgresDecodable & Sendable>(_ sql: String, as type: T.Type = T.self) async throws -> [T] {
        try await withStore { store in
            var values: [T] = []
            for try await value in try await store.client.query(PostgresQuery(unsafeSQL: sql)).decode(T.self) { values.append(value) }
            return values
        }
    }

    /// Every "instance step" pair with a record in history.
    func recordedSteps() async throws -> Set<String> {
        Set(try await values("SELECT instance_id || ' ' || step_id FROM \"\(name)\".workflow_history"))
    }

    /// The "instance step" pairs recorded at or before `date` (server clock, this machine's): what
    /// was in history at a kill, read after it — by then a survivor may have taken over a lapsed
    /// lease and recorded the step that was in flight.
    func recordedSteps(before date: Date) async throws -> Set<String> {
        let until = Int64((date.timeIntervalSince1970 * 1000).rounded())
        return Set(try await values("SELECT instance_id || ' ' || step_id FROM \"\(name)\".workflow_history WHERE recorded_at <= \(until)"))
    }

    /// When the first history record written after `date` was recorded (server clock), among
    /// `instances` if given; `nil` when there is none.
    func firstRecordAfter(_ date: Date, instances: [String]? = nil) async throws -> Date? {
        let after = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let filter = instances.map { " AND instance_id IN (\($0.map { "'\($0)'" }.joined(separator: ", ")))" } ?? ""
        let first = try await values(
            "SELECT min(recorded_at) FROM \"\(name)\".workflow_history WHERE recorded_at > \(after)\(filter)", as: Int64?.self
        )
        return first.first?.map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    /// How many instances match `condition` (SQL on `workflow_instances`).
    func instanceCount(where condition: String) async throws -> Int {
        Int(try await values("SELECT count(*) FROM \"\(name)\".workflow_instances WHERE \(condition)", as: Int64.self).first ?? -1)
    }

    /// Every row of `table` (`instances` or `history`) as text, in key order: to compare snapshots.
    func rows(of table: String) async throws -> [String] {
        let key = table == "history" ? "sequence" : "instance_id"
        return try await values("SELECT t::text FROM \"\(name)\".workflow_\(table) t ORDER BY \(key)")
    }

    /// Drops the schema and everything in it.
    func drop() async throws {
        try await withStore { store in
            _ = try await store.client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \"\(name)\" CASCADE"))
        }
    }
}

/// Runs `body` with a fresh schema and a scratch directory for one test's worker processes. Every
/// worker it launched is killed when it returns, however it returns; the schema is dropped when it
/// succeeded (kept for a look otherwise).
func withWorkerProcesses(workersApplicationName: String? = nil, _ body: (WorkerProcesses) async throws -> Void) async throws {
    let schema = try PostgresTestSchema(workersApplicationName: workersApplicationName)
    try await withScratchDirectory { directory in
        let workers = WorkerProcesses(schema: schema, directory: directory)
        defer { workers.killAll() }
        try await body(workers)
    }
    try await schema.drop()
}

/// One test's `EddaCrashWorker postgres` processes: one schema, one executions file.
final class WorkerProcesses {
    let schema: PostgresTestSchema
    let directory: URL
    /// The executions file every worker appends to.
    let executions: String
    private var processes: [Process] = []

    init(schema: PostgresTestSchema, directory: URL) {
        self.schema = schema
        self.directory = directory
        self.executions = directory.appendingPathComponent("executions.log").path
    }

    /// Launches a worker (see Tests/CrashWorker/main.swift for `role` and `options`). With `logged`,
    /// its standard error goes to ``log(of:)``.
    func launch(
        _ workerID: String, instances: Int, steps: Int, delayMilliseconds: Int, _ role: String, options: [String] = [], logged: Bool = false
    ) throws -> Process {
        let arguments = ["postgres", schema.workerURL, executions, workerID, "\(instances)", "\(steps)", "\(delayMilliseconds)", role]
        let process = try launchWorker(arguments + options, standardError: logged ? log(of: workerID) : nil)
        processes.append(process)
        return process
    }

    /// Where a `logged` worker's standard error goes.
    func log(of workerID: String) -> URL {
        directory.appendingPathComponent("\(workerID).log")
    }

    /// The step executions so far, in the order they were written.
    var executed: [StepExecution] { stepExecutions(of: executions) }

    /// SIGKILLs every worker still running, stopped (SIGSTOP) or not, and reaps it.
    func killAll() {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// One line "instance step worker" of a postgres worker's executions file: a step's body started.
struct StepExecution: Hashable {
    let instance: String
    let step: String
    let worker: String

    /// "instance step", as ``PostgresTestSchema/recordedSteps()`` lists them.
    var key: String { "\(instance) \(step)" }
}

/// The step executions in a postgres worker's executions file, in the order they were written.
func stepExecutions(of path: String) -> [StepExecution] {
    lines(of: path).filter { !$0.hasPrefix("#") }.map { line in
        let parts = line.split(separator: " ").map(String.init)
        return StepExecution(instance: parts[0], step: parts[1], worker: parts[2])
    }
}

/// The marker lines ("# <kind> …") of a postgres worker's executions file, without "# <kind> ".
func markers(_ kind: String, of path: String) -> [String] {
    lines(of: path).filter { $0.hasPrefix("# \(kind) ") }.map { String($0.dropFirst(kind.count + 3)) }
}

/// Waits until `done` holds; throws once `progress` has not changed for `patience`.
func waitUntil(_ done: () async -> Bool, stalledAfter patience: Duration, progress: () async -> Int) async throws {
    var (last, since) = (await progress(), ContinuousClock.now)
    while await !done() {
        try await Task.sleep(for: .milliseconds(20))
        let now = await progress()
        if now != last {
            (last, since) = (now, .now)
        } else if ContinuousClock.now - since > patience {
            throw CrashTestError(message: "no progress for \(patience)")
        }
    }
}

/// Waits for `process` to end (at most a minute) and expects it exited with status 0.
func expectCleanExit(_ process: Process, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    try await waitUntil(timeout: .seconds(60)) { !process.isRunning }
    #expect(
        process.terminationReason == .exit && process.terminationStatus == 0,
        "\(process.arguments?.dropFirst(3).first ?? "worker") ended with \(process.terminationReason) \(process.terminationStatus)",
        sourceLocation: sourceLocation
    )
}
