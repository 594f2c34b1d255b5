@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Testing
import EddaTestSupport

/// The built `edda` binary against real database files.
@Suite("CLI: the edda binary", .timeLimit(.minutes(1)))
struct CLITests {
    static let hello = Activity("hello") { (_: ActivityContext, name: String) -> String in
        guard !name.isEmpty else { throw TerminalError("no name") }
        return "Hello, \(name)!"
    }
    static let greet = Workflow("greet") { (ctx: WorkflowContext, name: String) -> String in try await hello(ctx, name) }

    func edda(_ arguments: [String]) async throws -> EddaBinary.Result {
        try await EddaBinary.run(arguments)
    }

    @Test func listAndShowReadAFileWithoutWritingIt() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.greet, "Ada", instanceID: "ok-1").result()
                _ = try? await app.start(Self.greet, "", instanceID: "bad-1").result()
            }
            let before = try Data(contentsOf: URL(fileURLWithPath: path))

            let list = try await edda(["list", "--database", path, "--json"])
            #expect(list.status == 0, "\(list.error)")
            let ids = list.output.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["instance_id"] as? String
            }
            #expect(Set(ids) == ["ok-1", "bad-1"])
            let none = try await edda(["list", "--database", path, "--created-before", "2020-01-01"])
            #expect(none.output.contains("No instances."), "\(none.output)\(none.error)")
            let badTime = try await edda(["list", "--database", path, "--created-from", "soon"])
            #expect(badTime.status != 0 && badTime.error.contains("--created-from takes a day"), "\(badTime.error)")
            let failed = try await edda(["list", "--database", path, "--status", "failed"])
            #expect(failed.output.contains("bad-1") && !failed.output.contains("ok-1"))
            let show = try await edda(["show", "ok-1", "--database", path])
            #expect(show.status == 0)
            #expect(show.output.contains("Hello, Ada!"))
            let failedSteps = try await edda(["show", "bad-1", "--database", path, "--failed"])
            #expect(failedSteps.output.contains(" ✗ ") && failedSteps.output.contains("TerminalError: no name"), "\(failedSteps.output)")
            #expect(!(list.output + failed.output + failedSteps.output).contains("\u{1B}["), "colour codes in piped output")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "reading changed the database file")
        }
    }

    @Test func backupCopiesAConsistentDatabaseAndNeverOverwrites() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.greet, "Ada", instanceID: "b-1").result()
                let copy = path + ".backup"
                let backup = try await edda(["backup", "--database", path, "--to", copy])
                #expect(backup.status == 0, "\(backup.error)")
                let listed = try await edda(["list", "--database", copy, "--json"])
                #expect(listed.output.contains("\"b-1\""), "\(listed.output)\(listed.error)")
                let again = try await edda(["backup", "--database", path, "--to", copy])
                #expect(again.status != 0 && again.error.contains("never overwrites"), "\(again.error)")
            }
        }
    }

    @Test func aForeignDatabaseIsNeitherReadNorMigratedAndAnEmptyFileIsMigrated() async throws {
        try await withTemporaryDatabase { path in
            // A SQLite file of another application.
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in try db.execute(sql: "CREATE TABLE unrelated (x INTEGER)") }
            try queue.close()
            let before = try Data(contentsOf: URL(fileURLWithPath: path))

            let list = try await edda(["list", "--database", path])
            #expect(list.status != 0)
            #expect(list.error.contains("not an Edda one"), "\(list.error)")
            let migrate = try await edda(["migrate", "--database", path])
            #expect(migrate.status != 0 && migrate.error.contains("not an Edda one"), "\(migrate.error)")
            let tables = try await DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
            #expect(tables == ["unrelated"], "Edda's tables were added: \(tables)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)

            let directory = try await edda(["list", "--database", URL(fileURLWithPath: path).deletingLastPathComponent().path])
            #expect(directory.status != 0 && directory.error.contains("is a directory"), "\(directory.error)")

            let empty = path + ".empty"
            _ = FileManager.default.createFile(atPath: empty, contents: Data())
            let migrated = try await edda(["migrate", "--database", empty])
            #expect(migrated.status == 0, "\(migrated.error)")
            let after = try await edda(["list", "--database", empty])
            #expect(after.status == 0 && after.output.contains("No instances."), "\(after.error)")
        }
    }

    @Test func aFileThisUserMayOnlyReadIsListed() async throws {
        // Root reads everything: run the binary as another user (CI runs as root; elsewhere this is skipped).
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser") || FileManager.default.isExecutableFile(atPath: "/sbin/runuser")
        else { return }
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in _ = try await app.start(Self.greet, "Ada", instanceID: "r-1").result() }
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder)
            for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
            }
            let binary = try EddaBinary.executable().path
            let list = try await EddaBinary.runCommand("/usr/sbin/runuser", ["-u", "nobody", "--", binary, "list", "--database", path])
            #expect(list.status == 0, "\(list.error)")
            #expect(list.output.contains("r-1"), "\(list.output)")
        }
    }

    static let waiter = Workflow("waiter") { (ctx, _: Int) -> Int in
        try await ctx.waitForEvent(type: "go", as: Int.self).data
    }

    @Test func sendEventAndCancelActOnARunningApp() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                let first = try await app.start(Self.waiter, 0, instanceID: "w-1")
                let second = try await app.start(Self.waiter, 0, instanceID: "w-2")
                for _ in 0..<2000 {
                    let (one, two) = (try await store.instance("w-1"), try await store.instance("w-2"))
                    if one?.readyAt != nil, two?.readyAt != nil { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                let sent = try await edda(["send-event", "--database", path, "--type", "go", "--data", "42", "--to", "w-1"])
                #expect(sent.status == 0, "\(sent.error)")
                #expect(sent.output.contains("delivered to w-1"))
                #expect(try await first.result() == 42)
                let cancelled = try await edda(["cancel", "w-2", "--database", path])
                #expect(cancelled.status == 0, "\(cancelled.error)")
                #expect(cancelled.output.contains("cancellation requested for w-2"), "\(cancelled.output)")
                await #expect(throws: WorkflowCancelledError.self) { try await second.result() }
                let again = try await edda(["cancel", "w-2", "--database", path])
                #expect(again.status != 0)
                #expect(again.error.contains("instance w-2 already cancelled; nothing to cancel"), "\(again.error)")
                let done = try await edda(["cancel", "w-1", "--database", path])
                #expect(done.error.contains("instance w-1 already completed; nothing to cancel"), "\(done.error)")
                #expect(try await store.instance("w-1")?.cancelRequested == false, "a late cancel changed nothing")
                let badData = try await edda(["send-event", "--database", path, "--type", "go", "--data", "not json"])
                #expect(badData.status != 0)
            }
        }
    }

    @Test func aReadOnlyStoreRefusesWritesAndWorkers() async throws {
        try await withTemporaryDatabase { path in
            _ = try SQLiteStore(path: path)
            let reader = try SQLiteStore(readingAt: path)
            await #expect(throws: StoreError.self) {
                _ = try await reader.createInstance(
                    NewInstance(instanceID: "x", workflowName: "w", serviceName: "s", input: JSONPayload(json: "[]")), leasedTo: nil
                )
            }
            do {
                try await reader.attachWorker("w")
                Issue.record("a worker attached to a read-only store")
            } catch let error as StoreError {
                #expect(error.code == .notWritable)
            }
            #expect(try await reader.instance("x") == nil)
        }
    }
}
