@_spi(EddaStores) import Edda
@_spi(EddaStores) @testable import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Testing

@Suite("SQLite store", .timeLimit(.minutes(1)))
struct SQLiteStoreTests {
    @Test func durabilityIsFullByDefault() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            #expect(try await store.synchronousSetting() == 2)
            let journal = try await store.writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(journal == "wal")
        }
    }

    @Test func aDatabaseANewerEddaMigratedIsRefusedByAWorkerAndAReaderAndLeftAsItIs() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await store.writer.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from a newer Edda')")
            }
            try store.writer.close()
            // Before, an app opened it and ran on it silently.
            let error = try #require(throws: StoreError.self) { try SQLiteStore(path: path) }
            #expect(error.code == .schemaTooNew)
            #expect(error.message.contains("newer version of Edda") && error.message.contains("Nothing was changed"))
            let reading = try #require(throws: StoreError.self) { try SQLiteStore(readingAt: path) }
            #expect(reading.code == .schemaTooNew)
            let queue = try DatabaseQueue(path: path)
            #expect(try await queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }.contains("v99: from a newer Edda"))
        }
    }

    @Test func normalDurabilityIsAChoice() async throws {
        try await withTemporaryDatabase { path in
            var configuration = SQLiteStore.Configuration()
            configuration.durability = .normal
            let store = try SQLiteStore(path: path, configuration: configuration)
            #expect(try await store.synchronousSetting() == 1)
        }
    }

    @Test func secondWorkerOnTheSameFileIsRefused() async throws {
        try await withTemporaryDatabase { path in
            let first = try SQLiteStore(path: path)
            try await first.attachWorker("w1")
            let second = try SQLiteStore(path: path)
            let error = try await #require(throws: StoreError.self) { try await second.attachWorker("w2") }
            #expect(error.code == .databaseInUse)
            #expect(error.message.contains("pid \(ProcessInfo.processInfo.processIdentifier)"))
            // Reading alongside the owner works.
            #expect(try await second.instances(matching: InstanceQuery()).instances.isEmpty)
            try await first.detachWorker("w1")
            try await second.attachWorker("w2")
        }
    }

    @Test func appRunFailsFastWhenAnotherProcessOwnsTheFile() async throws {
        try await withTemporaryDatabase { path in
            let owner = try SQLiteStore(path: path)
            try await owner.attachWorker("owner")
            let app = EddaApp(store: try SQLiteStore(path: path), serviceName: "s", configuration: .testing)
            let error = try await #require(throws: StoreError.self) {
                try await app.run { _ in
                    try await Task.sleep(for: .seconds(60))
                    return 1
                }
            }
            #expect(error.code == .databaseInUse)
        }
    }

    @Test func retryMetadataUsesTheSeedsKeys() async throws {
        let store = try SQLiteStore.inMemory()
        let lease = try await store.createLeasedInstance("i")
        let metadata = RetryMetadata(
            totalAttempts: 3, totalDurationMilliseconds: 7200, exhausted: false,
            lastError: ErrorRecord(type: "ConnectionError", message: "Network timeout"), errors: []
        )
        try await store.append(
            HistoryEvent(instanceID: "i", stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "{}"), retry: metadata),
            lease: lease
        )
        let raw = try await store.writer.read { db in try String.fetchOne(db, sql: "SELECT retry_metadata FROM workflow_history") }
        let json = try #require(raw)
        #expect(json.contains("\"total_attempts\":3") && json.contains("\"total_duration_ms\":7200"))
        #expect(json.contains("\"last_error\":{\"error_type\":\"ConnectionError\",\"message\":\"Network timeout\"}"))
        #expect(try await store.history(of: "i").first?.retry == metadata)
    }

    @Test func anUnknownStatusIsReadAsStoredAndMarked() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await store.createLeasedInstance("i")
        try await store.writer.write { db in try db.execute(sql: "UPDATE workflow_instances SET status = 'exploded'") }
        let instance = try #require(try await store.instance("i"))
        #expect(instance.status.rawValue == "exploded" && !instance.status.isKnown)
        #expect(instance.unreadable?.contains("exploded") == true)
    }

    @Test func storesOpeningANewFileAtOnceBothSucceed() async throws {
        // Each races to create the schema; the loser of a migration retries instead of failing
        // with "table … already exists" or "duplicate column name".
        for _ in 0..<20 {
            try await withTemporaryDatabase { path in
                let stores = try await withThrowingTaskGroup(of: SQLiteStore.self) { group in
                    for _ in 0..<3 {
                        group.addTask { try SQLiteStore(path: path) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(stores.count == 3)
                #expect(try await stores[0].statusCounts(matching: InstanceQuery()).isEmpty)
            }
        }
    }

    @Test func aFileWrittenBeforeLeasesIsMigratedAndResumed() async throws {
        let log = ExecutionLogForStore()
        let first = Activity("first") { (ctx) -> Int in log.record("first"); return 1 }
        let second = Activity("second") { (ctx) -> Int in log.record("second"); return 2 }
        let twoSteps = Workflow("two_steps") { (ctx) -> Int in try await first(ctx) + second(ctx) }
        try await withTemporaryDatabase { path in
            // Schema v2, as the previous release left it: a running instance "owned" by a dead
            // process, its first step recorded.
            let old = try DatabaseQueue(path: path)
            try SQLiteStore.migrator.migrate(old, upTo: "v2: transactional outbox")
            try await old.write { db in
                try db.execute(sql: """
                    INSERT INTO workflow_instances (instance_id, workflow_name, service_name, status, input, lease_owner, created_at, updated_at)
                    VALUES ('legacy', 'two_steps', 's', 'running', '[]', 'host:123:dead', 1, 1);
                    INSERT INTO workflow_history (instance_id, step_id, attempt, position, step_name, kind, payload, recorded_at)
                    VALUES ('legacy', 'first:1', 0, 1, 'first', 'ActivityCompleted', '1', 1);
                    """)
            }
            try old.close()

            let store = try SQLiteStore(path: path)
            let app = EddaApp(store: store, serviceName: "s", configuration: .testing)
            try app.register(twoSteps)
            let result = try await app.run { app in try await app.handle(for: twoSteps, instanceID: "legacy").result() }
            #expect(result == 3)
            #expect(log.all == ["second"], "the recorded step was replayed, not run again")
            #expect(try await store.history(of: "legacy").map(\.stepID) == ["first:1", "second:1"])
            let columns = try await store.writer.read { db in try db.columns(in: "workflow_instances").map(\.name) }
            #expect(Set(["lease_token", "ready_at", "run_generation", "parent_instance_id", "parent_step_id", "trace_context"]).isSubset(of: columns))
        }
    }

    @Test func restartResumesOnTheSameFile() async throws {
        let log = ExecutionLogForStore()
        let first = Activity("first") { (ctx) -> Int in log.record("first"); return 1 }
        let second = Activity("second") { (ctx) -> Int in log.record("second"); return 2 }
        let twoSteps = Workflow("two_steps") { (ctx) -> Int in
            try await first(ctx) + second(ctx)
        }
        try await withTemporaryDatabase { path in
            // The first process recorded step one and went away without finishing.
            let store1 = try SQLiteStore(path: path)
            try await store1.attachWorker("gone")
            let lease = try await store1.createLeasedInstance("t1", workflowName: "two_steps", owner: "gone")
            try await store1.append(
                HistoryEvent(instanceID: "t1", stepID: "first:1", position: 1, name: "first", kind: .activityCompleted, payload: JSONPayload(json: "1")),
                lease: lease
            )
            // It dies holding the lease; the file lock dies with it.
            try await store1.detachWorker("gone")
            let app = EddaApp(store: try SQLiteStore(path: path), serviceName: "s", configuration: .testing)
            try app.register(twoSteps)
            let result = try await app.run { app in try await app.handle(for: twoSteps, instanceID: "t1").result() }
            #expect(result == 3)
            #expect(log.all == ["second"])
        }
    }
}

import Synchronization

final class ExecutionLogForStore: Sendable {
    private let entries = Mutex<[String]>([])
    func record(_ name: String) { entries.withLock { $0.append(name) } }
    var all: [String] { entries.withLock { $0 } }
}

@Suite("SQLite: configuration")
struct SQLiteConfigurationTests {
    @Test func aBusyTimeoutKeepsItsFractionOfASecond() {
        var configuration = SQLiteStore.Configuration()
        configuration.busyTimeout = .milliseconds(500)
        guard case .timeout(let seconds) = SQLiteStore.grdbConfiguration(configuration).busyMode else {
            Issue.record("no busy timeout set")
            return
        }
        #expect(seconds == 0.5)
    }
}
