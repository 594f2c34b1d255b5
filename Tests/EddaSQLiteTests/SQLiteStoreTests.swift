import Edda
import EddaSQLite
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
            #expect(try await second.instances(matching: InstanceQuery()).isEmpty)
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

    @Test func historyIsAppendOnlyAndUniquePerStep() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await store.createInstance(
            NewInstance(instanceID: "i", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "w1")
        )
        let event = NewHistoryEvent(instanceID: "i", stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1"))
        try await store.append(event)
        var changed = event
        changed.payload = JSONPayload(json: "2")
        let error = try await #require(throws: StoreError.self) { try await store.append(changed) }
        #expect(error.code == .database)
        let history = try await store.history(of: "i")
        #expect(history.count == 1)
        #expect(history[0].payload?.json == "1")
    }

    @Test func concurrentAppendsShareCommitsAndAFailingOneFailsAlone() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            _ = try await store.createInstance(
                NewInstance(instanceID: "i", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "w1")
            )
            try await store.append(NewHistoryEvent(instanceID: "i", stepID: "dup", position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "0")))
            let results = await withTaskGroup(of: (String, Bool).self) { group in
                for index in 0..<64 {
                    let stepID = index == 31 ? "dup" : "s:\(index)"
                    group.addTask {
                        do {
                            try await store.append(
                                NewHistoryEvent(instanceID: "i", stepID: stepID, position: nil, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "\(index)"))
                            )
                            return (stepID, true)
                        } catch {
                            return (stepID, false)
                        }
                    }
                }
                return await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results["dup"] == false)
            #expect(results.filter { $0.value }.count == 63)
            let history = try await store.history(of: "i")
            #expect(history.count == 64)
            #expect(history.first { $0.stepID == "dup" }?.payload?.json == "0", "the duplicate did not overwrite")
        }
    }

    @Test func finishedInstanceIsNotFinishedAgain() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await store.createInstance(
            NewInstance(instanceID: "i", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "w1")
        )
        try await store.finishInstance("i", with: .completed(JSONPayload(json: "\"first\"")))
        try await store.finishInstance("i", with: .failed(ErrorRecord(type: "E", message: "late")))
        let instance = try #require(try await store.instance("i"))
        #expect(instance.status == .completed)
        #expect(instance.output?.json == "\"first\"")
        #expect(instance.error == nil)
    }

    @Test func retryMetadataUsesTheSeedsKeys() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await store.createInstance(
            NewInstance(instanceID: "i", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "w1")
        )
        let metadata = RetryMetadata(
            totalAttempts: 3, totalDurationMilliseconds: 7200, exhausted: false,
            lastError: ErrorRecord(type: "ConnectionError", message: "Network timeout"), errors: []
        )
        try await store.append(
            NewHistoryEvent(instanceID: "i", stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "{}"), retry: metadata)
        )
        let raw = try await store.writer.read { db in try String.fetchOne(db, sql: "SELECT retry_metadata FROM workflow_history") }
        let json = try #require(raw)
        #expect(json.contains("\"total_attempts\":3") && json.contains("\"total_duration_ms\":7200"))
        #expect(json.contains("\"last_error\":{\"error_type\":\"ConnectionError\",\"message\":\"Network timeout\"}"))
        #expect(try await store.history(of: "i").first?.retry == metadata)
    }

    @Test func unknownStatusIsACorruptRecordError() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await store.createInstance(
            NewInstance(instanceID: "i", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "w1")
        )
        try await store.writer.write { db in try db.execute(sql: "UPDATE workflow_instances SET status = 'exploded'") }
        let error = try await #require(throws: StoreError.self) { try await store.instance("i") }
        #expect(error.code == .corruptRecord)
        #expect(error.message.contains("exploded"))
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
            _ = try await store1.createInstance(
                NewInstance(instanceID: "t1", workflowName: "two_steps", serviceName: "s", input: JSONPayload(json: "[]"), workerID: "gone")
            )
            try await store1.append(
                NewHistoryEvent(instanceID: "t1", stepID: "first:1", position: 1, name: "first", kind: .activityCompleted, payload: JSONPayload(json: "1"))
            )
            let app = EddaApp(store: try SQLiteStore(path: path), serviceName: "s", configuration: .testing)
            app.register(twoSteps)
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
