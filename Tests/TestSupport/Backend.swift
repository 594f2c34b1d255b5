public import Edda
import EddaPostgres
import EddaSQLite
import Foundation
import GRDB
import PostgresNIO
import Synchronization
public import Testing

/// The store backends the engine suites run on: each engine test is written once and runs on both.
///
/// ```swift
/// @Test(arguments: Backend.allCases)
/// func aWorkflowCompletes(_ backend: Backend) async throws {
///     try await backend.withStore { store in
///         try await withTestApp(store: store) { app in … }
///     }
/// }
/// ```
///
/// PostgreSQL needs `EDDA_POSTGRES_URL` (see ``PostgresTestDatabase``): without it the PostgreSQL
/// cases are cancelled, which Swift Testing reports as skipped; with `EDDA_REQUIRE_POSTGRES=1` they fail.
public enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public var testDescription: String { rawValue }

    /// How many PostgreSQL databases the engine suites use at once. Swift Testing starts every test
    /// together, and each fresh schema's migration takes the server-wide migration lock in turn:
    /// unbounded, the last of some seventy waited past the store's 30 s startup timeout on a loaded
    /// 2-core machine. `EDDA_TEST_POSTGRES_PARALLEL` overrides it.
    static let postgresSlots = Slots(
        ProcessInfo.processInfo.environment["EDDA_TEST_POSTGRES_PARALLEL"].flatMap { Int($0) }.map { max($0, 1) } ?? 6
    )

    /// The archived history of `instanceID` (its earlier runs, moved aside by continue-as-new) as
    /// (run number, payload) in order, read with SQL: the `Store` API does not show the archive.
    public static func archivedHistory(of instanceID: String, in store: any Store) async throws -> [ArchivedRecord] {
        switch store {
        case let sqlite as SQLiteStore:
            return try await sqlite.writer.read { db in
                try Row.fetchAll(
                    db, sql: "SELECT run_generation, payload FROM workflow_history_archive WHERE instance_id = ? ORDER BY run_generation, sequence",
                    arguments: [instanceID]
                ).map { ArchivedRecord(run: $0["run_generation"], payload: $0["payload"]) }
            }
        case let postgres as PostgresStore:
            let rows = try await postgres.client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT run_generation, payload FROM "\(postgres.configuration.schema)".workflow_history_archive
                        WHERE instance_id = $1 ORDER BY run_generation, sequence
                        """,
                    binds: { var binds = PostgresBindings(); binds.append(instanceID); return binds }()
                )
            )
            var records: [ArchivedRecord] = []
            for try await (run, payload) in rows.decode((Int, String?).self) { records.append(ArchivedRecord(run: run, payload: payload)) }
            return records
        default:
            throw StoreError(.database, "No archive reader for \(type(of: store)).")
        }
    }

    /// Runs `body` with a fresh, empty store: SQLite in memory, or a running `PostgresStore` on a
    /// schema of its own, dropped afterwards. The store stays usable after an app that ran on it
    /// stopped, so a test can read it afterwards or run a second app on it (a restart).
    public func withStore<T: Sendable>(_ body: (any Store) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            return try await body(SQLiteStore.inMemory(logger: PostgresTestDatabase.quiet))
        case .postgres:
            try PostgresTestDatabase.requireServer()
            return try await Self.postgresSlots.holding {
                try await PostgresTestDatabase.withStore(maximumConnections: 4) { store in try await body(store) }
            }
        }
    }

    /// Runs `body` with a fresh database it can open more than once, as a restarted process or a
    /// second process would: a SQLite file in a temporary directory, or a PostgreSQL schema (dropped
    /// afterwards). Each ``BackendDatabase/open()`` is a store of its own on the same data.
    public func withDatabase<T: Sendable>(_ body: (BackendDatabase) async throws -> T) async throws -> T {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-test-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            return try await body(BackendDatabase(sqlitePath: directory.appendingPathComponent("edda.sqlite").path))
        case .postgres:
            try PostgresTestDatabase.requireServer()
            let schema = PostgresTestDatabase.freshSchema()
            // The first store migrates the schema and drops it at the end; every open() runs one more.
            return try await Self.postgresSlots.holding {
                try await PostgresTestDatabase.withStore(schema: schema, maximumConnections: 4) { first in
                    // Stores opened later run in this group until the body returns, before the schema is dropped.
                    let (opened, starter) = AsyncStream.makeStream(of: PostgresStore.self)
                    return try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            await withTaskGroup(of: Void.self) { running in
                                for await store in opened { running.addTask { try? await store.run() } }
                                running.cancelAll()
                            }
                        }
                        defer {
                            starter.finish()
                            group.cancelAll()
                        }
                        return try await body(BackendDatabase(postgresSchema: schema, first: first) { starter.yield($0) })
                    }
                }
            }
        }
    }
}

/// One record of an instance's archived history: the run it belonged to and its payload (JSON).
public struct ArchivedRecord: Equatable, Sendable {
    public var run: Int
    public var payload: String?

    public init(run: Int, payload: String?) {
        self.run = run
        self.payload = payload
    }
}

/// A database of one ``Backend`` that tests open as separate processes would.
public final class BackendDatabase: Sendable {
    private enum Location {
        case sqlite(path: String)
        case postgres(schema: String, first: PostgresStore)
    }

    private let location: Location
    private let start: @Sendable (PostgresStore) -> Void
    private let opened = Mutex(0)

    fileprivate init(sqlitePath: String) {
        location = .sqlite(path: sqlitePath)
        start = { _ in }
    }

    fileprivate init(postgresSchema: String, first: PostgresStore, start: @escaping @Sendable (PostgresStore) -> Void) {
        location = .postgres(schema: postgresSchema, first: first)
        self.start = start
    }

    /// A store on this database, running and ready: as another process (or the same one, restarted)
    /// would open it. On PostgreSQL the first call returns the store that created the schema.
    public func open() async throws -> any Store {
        switch location {
        case .sqlite(let path):
            return try SQLiteStore(path: path, logger: PostgresTestDatabase.quiet)
        case .postgres(let schema, let first):
            let isFirst = opened.withLock { count in
                count += 1
                return count == 1
            }
            if isFirst { return first }
            let store = try PostgresStore(
                configuration: PostgresTestDatabase.configuration(schema: schema, maximumConnections: 4), logger: PostgresTestDatabase.quiet
            )
            start(store)
            try await store.ready()
            return store
        }
    }
}

/// A counting semaphore for async code.
final class Slots: Sendable {
    private let state: Mutex<(free: Int, waiters: [CheckedContinuation<Void, Never>])>

    init(_ count: Int) {
        state = Mutex((count, []))
    }

    /// Runs `body` holding one slot, waiting for one first if none is free.
    func holding<T>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                guard state.free > 0 else {
                    state.waiters.append(continuation)
                    return false
                }
                state.free -= 1
                return true
            }
            if now { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiters.isEmpty else {
                    state.free += 1
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
