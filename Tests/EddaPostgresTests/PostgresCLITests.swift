import Edda
import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import PostgresNIO
import Testing

/// The built `edda` binary on a `postgres://` URL.
@Suite("PostgreSQL: the edda CLI on a URL", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(1)))
struct PostgresCLITests {
    static let hello = Activity("hello") { (_: ActivityContext, name: String) -> String in
        guard !name.isEmpty else { throw TerminalError("no name") }
        return "Hello, \(name)!"
    }
    static let greet = Workflow("greet") { (ctx: WorkflowContext, name: String) -> String in try await hello(ctx, name) }
    static let waiter = Workflow("waiter") { (ctx: WorkflowContext, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }

    /// The test server's URL on `schema`.
    func url(_ schema: String) throws -> String {
        let base = try #require(PostgresTestDatabase.url)
        var components = try #require(URLComponents(string: base))
        components.queryItems = (components.queryItems ?? []).filter { $0.name != "schema" } + [URLQueryItem(name: "schema", value: schema)]
        return try #require(components.string)
    }

    @Test func listShowCancelAndSendEventOnAPostgresDatabase() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let database = try url(schema)
        try await PostgresTestDatabase.withStore(schema: schema) { store in
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.greet, "Ada", instanceID: "ok-1").result()
                _ = try? await app.start(Self.greet, "", instanceID: "bad-1").result()
                let waiting = try await app.start(Self.waiter, 0, instanceID: "w-1")
                let cancelled = try await app.start(Self.waiter, 0, instanceID: "w-2")

                let list = try await EddaBinary.run(["list", "--database", database, "--json"])
                #expect(list.status == 0, "\(list.error)")
                #expect(Set(list.output.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["instance_id"] as? String
                }) == ["ok-1", "bad-1", "w-1", "w-2"])
                let show = try await EddaBinary.run(["show", "bad-1", "--failed"], environment: ["EDDA_DATABASE": database])
                #expect(show.status == 0, "\(show.error)")
                #expect(show.output.contains(" ✗ ") && show.output.contains("no name"), "\(show.output)")
                let exported = try await EddaBinary.run(["export", "ok-1", "--database", database])
                #expect(exported.status == 0, "\(exported.error)")
                let export = try HistoryExport(jsonData: Data(exported.output.utf8))
                #expect(export.status == .completed && export.output?.json == #""Hello, Ada!""#)
                #expect(export.history.map(\.stepID) == ["hello:1"] && export.history.first?.payload?.json == #""Hello, Ada!""#)
                #expect(try await Replayer(Self.greet).replay(Data(exported.output.utf8)).isClean)

                for _ in 0..<2000 {
                    let (one, two) = (try await store.instance("w-1"), try await store.instance("w-2"))
                    if one?.readyAt != nil, two?.readyAt != nil { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                let sent = try await EddaBinary.run(["send-event", "--database", database, "--type", "go", "--data", "7", "--to", "w-1"])
                #expect(sent.status == 0, "\(sent.error)")
                #expect(try await waiting.result() == 7)
                let cancel = try await EddaBinary.run(["cancel", "w-2", "--database", database])
                #expect(cancel.status == 0, "\(cancel.error)")
                await #expect(throws: WorkflowCancelledError.self) { try await cancelled.result() }
                let late = try await EddaBinary.run(["cancel", "ok-1", "--database", database])
                #expect(late.status != 0)
                #expect(late.error.contains("instance ok-1 already completed; nothing to cancel"), "\(late.error)")
            }
        }
    }

    @Test func readingASchemaWithoutEddaTablesChangesNothingAndMigrateCreatesThem() async throws {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        let database = try url(schema)
        let list = try await EddaBinary.run(["list", "--database", database])
        #expect(list.status != 0)
        #expect(list.error.contains("holds no Edda tables"), "\(list.error)")

        try await PostgresTestDatabase.withStore(schema: "edda_test_probe_\(UUID().uuidString.prefix(6).lowercased())") { store in
            let rows = try await store.client.query("SELECT count(*)::int FROM information_schema.schemata WHERE schema_name = \(schema)")
            var count = -1
            for try await value in rows.decode(Int.self) { count = value }
            #expect(count == 0, "reading created the schema")

            let migrate = try await EddaBinary.run(["migrate", "--database", database])
            #expect(migrate.status == 0, "\(migrate.error)")
            #expect(migrate.output.contains("created Edda's schema"), "\(migrate.output)")
            let after = try await EddaBinary.run(["list", "--database", database])
            #expect(after.status == 0, "\(after.error)")
            #expect(after.output.contains("No instances."))
            let again = try await EddaBinary.run(["migrate", "--database", database])
            #expect(again.output.contains("schema already up to date"), "\(again.output)\(again.error)")

            // A migration this build does not know: a newer Edda wrote the schema.
            try await store.client.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \"\(schema)\".edda_schema_migrations (version, name, applied_at) VALUES (999, 'from a newer Edda', 0)")
            )
            let newer = try await EddaBinary.run(["migrate", "--database", database])
            #expect(newer.status != 0 && newer.error.contains("has a newer schema than this edda"), "\(newer.output)\(newer.error)")
            #expect(!newer.output.contains("up to date"))
            try await PostgresTestDatabase.dropSchema(schema, using: store)
        }
    }
}
