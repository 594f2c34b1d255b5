@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import GRDB
import Testing

/// `edda prune` on a SQLite file, through the built binary.
@Suite("CLI: edda prune on SQLite", .timeLimit(.minutes(1)))
struct PruneCLITests {
    /// Two finished instances 40 days old, one finished today, one running 40 days old.
    func seed(_ path: String) async throws {
        let store = try SQLiteStore(path: path)
        for id in ["old-1", "old-2", "new", "running"] {
            let lease = try await store.createLeasedInstance(id)
            try await store.append(
                HistoryEvent(instanceID: id, stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1")), lease: lease
            )
            if id == "running" {
                try await store.release(lease, readyAt: nil)
            } else {
                try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "1")))
            }
        }
        try await store.writer.write { db in
            try db.execute(
                sql: "UPDATE workflow_instances SET updated_at = updated_at - ?, created_at = created_at - ? WHERE instance_id IN ('old-1', 'old-2', 'running')",
                arguments: [40 * 86_400_000, 40 * 86_400_000]
            )
        }
    }

    func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    @Test func pruneDeletesOldFinishedInstancesAndADryRunDeletesNothing() async throws {
        try await withTemporaryDatabase { path in
            try await seed(path)

            let dry = try await EddaBinary.run(["prune", "--database", path, "--older-than", "30d", "--dry-run", "--json"])
            #expect(dry.status == 0, "\(dry.error)")
            let counted = try json(dry.output)
            #expect(counted["dry_run"] as? Bool == true)
            #expect((counted["rows"] as? [String: Int]) == ["instances": 2, "history": 2, "history_archive": 0, "messages": 0, "outbox": 0], "\(dry.output)")
            #expect(try await SQLiteStore(readingAt: path).instances(matching: InstanceQuery()).instances.count == 4)

            let text = try await EddaBinary.run(["prune", "--database", path, "--older-than", "30d"])
            #expect(text.status == 0, "\(text.error)")
            #expect(text.output.contains("deleted what finished before 30d ago") && text.output.contains("instances       2"), "\(text.output)")
            let reader = try SQLiteStore(readingAt: path)
            #expect(try await reader.instance("old-1") == nil)
            #expect(try await reader.instance("old-2") == nil)
            #expect(try await reader.instance("new") != nil)
            #expect(try await reader.instance("running") != nil)
            #expect(try await reader.history(of: "running").count == 1)

            let again = try await EddaBinary.run(["prune", "--database", path, "--older-than", "30d", "--json"])
            #expect((try json(again.output)["rows"] as? [String: Int])?["instances"] == 0, "\(again.output)")
        }
    }

    @Test func aBadAgeIsAUsageErrorThatSaysWhatAnAgeLooksLike() async throws {
        try await withTemporaryDatabase { path in
            try await seed(path)
            for age in ["3x", "d", "-5d", "30"] {
                let result = try await EddaBinary.run(["prune", "--database", path, "--older-than=\(age)"])
                #expect(result.status != 0, "\(age)")
                #expect(result.error.contains("--older-than takes a whole number and a unit (s, m, h, d or w)"), "\(age): \(result.error)")
                #expect(result.error.contains("Usage: edda prune"), "\(result.error)")
            }
            #expect(try await SQLiteStore(readingAt: path).instances(matching: InstanceQuery()).instances.count == 4)
        }
    }
}
