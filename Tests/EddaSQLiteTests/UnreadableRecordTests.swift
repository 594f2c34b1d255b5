import Edda
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import GRDB
import Testing

/// Rows Edda cannot fully read: one bad row never hides the others, and unreadable history fails
/// its instance instead of being retried forever.
@Suite("SQLite: unreadable rows and records", .timeLimit(.minutes(1)))
struct UnreadableRecordTests {
    @Test func aRowWithAnUnknownStatusOrAnUnreadableErrorIsListedMarkedAndTheOthersStillShow() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                for id in ["ok-1", "odd-1"] { _ = try await app.start(CLITests.greet, "Ada", instanceID: id).result() }
                _ = try? await app.start(CLITests.greet, "", instanceID: "bad-err").result()
            }
            try await store.writer.write { db in
                try db.execute(sql: "UPDATE workflow_instances SET status = 'paused<b>' WHERE instance_id = 'odd-1'")
                try db.execute(sql: "UPDATE workflow_instances SET error = 'not json' WHERE instance_id = 'bad-err'")
            }
            let page = try await store.instances(matching: InstanceQuery())
            #expect(Set(page.instances.map(\.instanceID)) == ["ok-1", "odd-1", "bad-err"])
            let odd = try #require(page.instances.first { $0.instanceID == "odd-1" })
            #expect(odd.status.rawValue == "paused<b>" && !odd.status.isKnown && !odd.status.isTerminal)
            #expect(odd.unreadable?.contains("status 'paused<b>'") == true)
            #expect(page.instances.first { $0.instanceID == "bad-err" }?.unreadable?.contains("error column") == true)
            #expect(page.instances.first { $0.instanceID == "ok-1" }?.unreadable == nil)
            #expect(try await store.statusCounts(matching: InstanceQuery()).map { "\($0.key.rawValue)=\($0.value)" }.sorted() == ["completed=1", "failed=1", "paused<b>=1"])

            let list = try await EddaBinary.run(["list", "--database", path])
            #expect(list.status == 0, "\(list.error)")
            #expect(list.output.contains("ok-1") && list.output.contains("odd-1") && list.output.contains("⚠ unreadable"), "\(list.output)")
        }
    }

    @Test func anUnreadableHistoryRecordFailsItsInstanceAndIsLeftAsItIs() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await store.seedInstance("h-1", workflowName: "greet", input: try JSONPayload.encode(["Ada"]), history: [
                HistoryEvent(instanceID: "h-1", stepID: "hello:1", position: 1, name: "hello", kind: .activityCompleted, payload: JSONPayload(json: "\"Hello, Ada!\"")),
            ])
            try await store.writer.write { db in try db.execute(sql: "UPDATE workflow_history SET kind = 'FromTheFuture' WHERE instance_id = 'h-1'") }
            let failure = try await withTestApp(store: store) { app in
                try app.register(CLITests.greet)
                return try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: CLITests.greet, instanceID: "h-1").result() }
            }
            #expect(failure.error.message.contains("cannot read"), "\(failure.error)")
            #expect(try await store.instance("h-1")?.status == .failed)
            let kinds = try await store.writer.read { db in try String.fetchAll(db, sql: "SELECT kind FROM workflow_history WHERE instance_id = 'h-1'") }
            #expect(kinds == ["FromTheFuture"], "history is left as it is")
        }
    }
}

/// What an error prints: the cause and what to do, without input data.
@Suite("SQLite: errors that explain themselves")
struct SQLiteErrorTextTests {
    func openError(_ path: String) -> String {
        do {
            _ = try SQLiteStore(path: path)
            return "opened"
        } catch {
            return "\(error)"
        }
    }

    @Test func aGarbageFileADirectoryAndAMissingFolderEachSayWhatIsWrong() async throws {
        try await withTemporaryDatabase { path in
            _ = FileManager.default.createFile(atPath: path, contents: Data(String(repeating: "not a database ", count: 100).utf8))
            let garbage = openError(path)
            #expect(garbage.contains("is not a SQLite database: check the path") && garbage.contains("file is not a database"), "\(garbage)")
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            let directory = openError(folder)
            #expect(directory.contains("is a directory"), "\(directory)")
            let missing = openError(folder + "/no/such/folder/edda.sqlite")
            #expect(missing.contains("does not exist: create it first"), "\(missing)")
            do {
                _ = try SQLiteStore(path: path)
            } catch let error as StoreError {
                #expect(String(reflecting: error).hasPrefix("StoreError(database):") && String(reflecting: error).contains("Cause:"))
            }
        }
    }
}
