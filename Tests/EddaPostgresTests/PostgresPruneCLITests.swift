@_spi(EddaStores) import Edda
import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `edda prune` on a `postgres://` URL, through the built binary.
@Suite("PostgreSQL: edda prune on a URL", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(1)))
struct PostgresPruneCLITests {
    @Test func pruneDeletesOldFinishedInstancesOnlyAndADryRunDeletesNothing() async throws {
        let schema = PostgresTestDatabase.freshSchema()
        let base = try #require(PostgresTestDatabase.url)
        var components = try #require(URLComponents(string: base))
        components.queryItems = (components.queryItems ?? []).filter { $0.name != "schema" } + [URLQueryItem(name: "schema", value: schema)]
        let database = try #require(components.string)
        try await PostgresTestDatabase.withStore(schema: schema) { store in
            for id in ["old", "new", "running"] {
                let lease = try await store.createLeasedInstance(id)
                try await store.append(
                    HistoryEvent(instanceID: id, stepID: "a:1", position: 1, name: "a", kind: .activityCompleted, payload: JSONPayload(json: "1")),
                    lease: lease
                )
                if id == "running" {
                    try await store.release(lease, readyAt: nil)
                } else {
                    try await store.finishInstance(lease: lease, with: .completed(JSONPayload(json: "1")))
                }
            }
            try await Backend.execute(
                "UPDATE workflow_instances SET updated_at = updated_at - 3456000000, created_at = created_at - 3456000000 WHERE instance_id IN ('old', 'running')", in: store
            )

            let dry = try await EddaBinary.run(["prune", "--database", database, "--older-than", "30d", "--dry-run", "--json"])
            #expect(dry.status == 0, "\(dry.error)")
            let counted = try #require(try JSONSerialization.jsonObject(with: Data(dry.output.utf8)) as? [String: Any], "\(dry.output)")
            #expect((counted["rows"] as? [String: Int])?["instances"] == 1 && (counted["rows"] as? [String: Int])?["history"] == 1, "\(dry.output)")
            #expect(try await store.instance("old") != nil)

            let pruned = try await EddaBinary.run(["prune", "--database", database, "--older-than", "30d"])
            #expect(pruned.status == 0, "\(pruned.error)")
            #expect(pruned.output.contains("instances       1") && pruned.output.contains("history         1"), "\(pruned.output)")
            #expect(try await store.instance("old") == nil)
            #expect(try await store.instance("new") != nil)
            #expect(try await store.instance("running") != nil)
            #expect(try await store.history(of: "running").count == 1)

            let bad = try await EddaBinary.run(["prune", "--database", database, "--older-than", "3x"])
            #expect(bad.status != 0 && bad.error.contains("--older-than takes a whole number and a unit"), "\(bad.error)")
        }
    }
}
