@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import GRDB
import Testing

/// The built `edda` binary's commands on SQLite files: `--json` everywhere, paging, usage errors,
/// `--version`, `migrate`'s report, wide characters in tables, retried attempts in `show`.
@Suite("CLI: edda commands, --json, usage and tables", .timeLimit(.minutes(1)))
struct CLICommandTests {
    /// `greet` fails with a TerminalError for an empty name.
    static let greet = CLITests.greet

    func edda(_ arguments: [String]) async throws -> EddaBinary.Result {
        try await EddaBinary.run(arguments)
    }

    /// Each line of `text` as a JSON object.
    func objects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Creates `count` unclaimed instances (no worker runs them).
    func create(_ count: Int, in store: SQLiteStore, workflow: String = "batch", id: (Int) -> String = { "i-\($0)" }) async throws {
        for index in 0..<count {
            _ = try await store.createInstance(
                NewInstance(instanceID: id(index), workflowName: workflow, serviceName: "test", input: JSONPayload(json: "[\(index)]")), leasedTo: nil
            )
        }
    }

    @Test func schedulesCreateListsAndDeletesAScheduleAndRefusesWhatItCannotRun() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await store.declareQueues([Queue("reports", concurrency: 2), Queue("tenants", concurrency: 1, partitioned: true)])
            let created = try await edda([
                "schedules", "create", "nightly", "--workflow", "report", "--cron", "0 2 * * *", "--time-zone", "Europe/Paris",
                "--input", #"[{"region": "eu"}]"#, "--overlap", "bufferOne", "--catch-up-window", "10m", "--queue", "reports", "--priority", "3",
                "--database", path,
            ])
            #expect(created.status == 0, "\(created.error)")
            #expect(created.output.contains("created schedule nightly") && created.output.contains("reports/3"), "\(created.output)")
            let stored = try #require(try await store.schedule(named: "nightly"))
            #expect(stored.workflowName == "report" && stored.expression == "0 2 * * *" && stored.timeZone == "Europe/Paris")
            #expect(stored.input == JSONPayload(json: #"[{"region": "eu"}]"#) && stored.overlap == .bufferOne)
            #expect(stored.catchUpWindow == .seconds(600) && stored.queue == "reports" && stored.priority == 3)

            let interval = try await edda(["schedules", "create", "often", "--workflow", "sync", "--every", "15m", "--database", path])
            #expect(interval.status == 0, "\(interval.error)")
            #expect(try await store.schedule(named: "often")?.expression == "@every 900s")
            let listed = try await edda(["schedules", "list", "--database", path])
            #expect(listed.output.contains("QUEUE") && listed.output.contains("reports/3"), "\(listed.output)")

            let refusals: [([String], String)] = [
                (["--every", "15m", "--queue", "nope"], "no queue named 'nope' is registered with this app or declared in the store"),
                (["--every", "15m", "--queue", "tenants"], "queue 'tenants' is partitioned"),
                (["--every", "15m", "--priority", "1"], "--priority applies to a schedule on a queue"),
                (["--every", "15m", "--cron", "* * * * *"], "Give the schedule one of --cron"),
                ([], "Give the schedule one of --cron"),
                (["--every", "15m", "--time-zone", "Europe/Paris"], "--time-zone applies to --cron"),
                (["--cron", "0 25 * * *"], "use 0–23"),
                (["--every", "15m", "--overlap", "never"], "--overlap takes one of skip, bufferOne"),
                (["--every", "15m", "--catch-up-window", "soon"], "--catch-up-window takes a whole number and a unit (s, m, h or d)"),
                (["--every", "15m", "--input", "{}"], "--input must be a JSON array"),
            ]
            for (options, message) in refusals {
                let refused = try await edda(["schedules", "create", "refused", "--workflow", "sync"] + options + ["--database", path])
                #expect(refused.status != 0 && refused.error.contains(message), "\(options): \(refused.error)")
            }
            #expect(try await store.schedule(named: "refused") == nil, "nothing was created")
            let again = try await edda(["schedules", "create", "often", "--workflow", "sync", "--every", "1h", "--database", path])
            #expect(again.status != 0 && again.error.contains("A schedule named 'often' exists already"), "\(again.error)")

            let deleted = try await edda(["schedules", "delete", "often", "--database", path])
            #expect(deleted.status == 0 && deleted.output.contains("deleted schedule often"), "\(deleted.error)")
            #expect(try await store.schedules().map(\.name) == ["nightly"])
            let missing = try await edda(["schedules", "delete", "often", "--database", path])
            #expect(missing.status != 0 && missing.error.contains("No schedule is named 'often'"), "\(missing.error)")
        }
    }

    @Test func listJSONPrintsEveryInstanceAndLimitPagesWithACursor() async throws {
        try await withTemporaryDatabase { path in
            try await create(60, in: try SQLiteStore(path: path))

            let all = try await edda(["list", "--database", path, "--json"])
            #expect(all.status == 0, "\(all.error)")
            #expect(Set(objects(all.output).compactMap { $0["instance_id"] as? String }).count == 60, "\(all.output.split(separator: "\n").count) lines")
            #expect(all.error.isEmpty, "\(all.error)")

            // --limit cuts the JSON short: the cursor goes to standard error, standard output stays objects.
            let first = try await edda(["list", "--database", path, "--json", "--limit", "25"])
            #expect(objects(first.output).count == 25 && first.output.split(separator: "\n").count == 25, "\(first.output)")
            let cursor = try #require(first.error.split(separator: "'").dropFirst().first.map(String.init), "no cursor in: \(first.error)")
            let rest = try await edda(["list", "--database", path, "--json", "--after", cursor])
            let ids = (objects(first.output) + objects(rest.output)).compactMap { $0["instance_id"] as? String }
            #expect(ids.count == 60 && Set(ids).count == 60, "\(ids)")

            // A table shows 50 and the next page's cursor; --limit 0 shows all.
            let table = try await edda(["list", "--database", path])
            #expect(table.output.contains("next page: --after '"), "\(table.output)")
            let everything = try await edda(["list", "--database", path, "--limit", "0"])
            #expect(everything.status == 0, "\(everything.error)")
            #expect(everything.output.split(separator: "\n").filter { $0.hasPrefix("i-") }.count == 60 && !everything.output.contains("next page"))
            let zeroJSON = try await edda(["list", "--database", path, "--json", "--limit", "0"])
            #expect(objects(zeroJSON.output).count == 60)

            let negative = try await edda(["list", "--database", path, "--limit=-1"])
            #expect(negative.status != 0 && negative.error.contains("--limit takes how many to print (0 for all)"), "\(negative.error)")
        }
    }

    @Test func usageErrorsShowTheSubcommandsUsage() async throws {
        try await withTemporaryDatabase { path in
            _ = try SQLiteStore(path: path)
            let cases: [([String], String, String)] = [
                (["list", "--database", path, "--status", "nope"], "Unknown status 'nope'", "Usage: edda list"),
                (["list", "--database", path, "--after", "bogus"], "is not a cursor", "Usage: edda list"),
                (["list", "--database", path, "--input", "=x"], "--input takes key=value", "Usage: edda list"),
                (["outbox", "--database", path, "--status", "nope"], "Unknown status 'nope'", "Usage: edda outbox"),
                (["send-event", "--database", path, "--type", "go", "--data", "not json"], "--data must be JSON", "Usage: edda send-event"),
                (["start", "greet", "--input", "\"Ada\""], "JSON array", "Usage: edda start"),
                (["serve", "--database", path, "--port", "70000"], "--port takes a port number", "Usage: edda serve"),
            ]
            for (arguments, message, usage) in cases {
                let result = try await edda(arguments)
                #expect(result.status != 0, "\(arguments)")
                #expect(result.error.contains(message) && result.error.contains(usage), "\(arguments): \(result.error)")
            }
        }
    }

    @Test func versionPrintsThisBuildsVersion() async throws {
        let version = try await edda(["--version"])
        #expect(version.status == 0, "\(version.error)")
        #expect(version.output.range(of: #"^edda \d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil, "\(version.output)")
    }

    @Test func showJSONHoldsTheInstanceAndItsHistory() async throws {
        try await withTemporaryDatabase { path in
            try await withTestApp(store: try SQLiteStore(path: path)) { app in
                _ = try await app.start(Self.greet, "Ada", instanceID: "ok-1").result()
                _ = try? await app.start(Self.greet, "", instanceID: "bad-1").result()
            }
            let ok = try await edda(["show", "ok-1", "--database", path, "--json"])
            #expect(ok.status == 0, "\(ok.error)")
            let document = try #require(objects(ok.output).first, "\(ok.output)")
            #expect(ok.output.split(separator: "\n").count == 1)
            #expect(document["instance_id"] as? String == "ok-1" && document["status"] as? String == "completed")
            #expect(document["output"] as? String == "Hello, Ada!" && document["input"] as? [String] == ["Ada"])
            let history = try #require(document["history"] as? [[String: Any]])
            #expect(history.map { $0["kind"] as? String } == ["ActivityCompleted"] && history.first?["payload"] as? String == "Hello, Ada!")

            let bad = try await edda(["show", "bad-1", "--database", path, "--json", "--failed"])
            let failed = try #require(objects(bad.output).first?["history"] as? [[String: Any]], "\(bad.output)\(bad.error)")
            #expect(!failed.isEmpty && failed.allSatisfy { $0["failed"] as? Bool == true }, "\(failed)")
            #expect((failed.first?["error"] as? [String: Any])?["message"] as? String == "no name")

            let missing = try await edda(["show", "nope", "--database", path, "--json"])
            #expect(missing.status != 0 && missing.output.isEmpty && missing.error.contains("No instance with ID nope"), "\(missing.error)")
        }
    }

    struct Flaky: Error {}
    static let flakyAttempts = Activity("flaky", retry: RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(1), maxDuration: nil)) {
        (ctx: ActivityContext) -> Int in
        if ctx.attempt < 2 { throw Flaky() }
        return ctx.attempt
    }
    static let retried = Workflow("retried") { (ctx: WorkflowContext) -> Int in try await flakyAttempts(ctx) }

    @Test func aRetriedAttemptIsNotMarkedAsAFinalFailure() async throws {
        try await withTemporaryDatabase { path in
            try await withTestApp(store: try SQLiteStore(path: path)) { app in
                let result = try await app.start(Self.retried, instanceID: "r-1").result()
                #expect(result == 2)
            }
            let show = try await edda(["show", "r-1", "--database", path])
            #expect(show.status == 0, "\(show.error)")
            let attempt = try #require(show.output.split(separator: "\n").first { $0.contains("AttemptFailed") }, "\(show.output)")
            #expect(attempt.hasPrefix(" ↻ "), "\(attempt)")
            #expect(!show.output.contains("✗ "), "a retried-then-succeeded step is marked as failed:\n\(show.output)")
            #expect(show.output.split(separator: "\n").contains { $0.contains("ActivityCompleted") && $0.hasPrefix("   ") })

            let json = try await edda(["show", "r-1", "--database", path, "--json"])
            let history = try #require(objects(json.output).first?["history"] as? [[String: Any]])
            let failedAttempt = try #require(history.first { $0["kind"] as? String == "AttemptFailed" })
            #expect(failedAttempt["retried"] as? Bool == true && failedAttempt["failed"] as? Bool == false)
        }
    }

    /// Terminal columns of the test's strings: CJK and emoji take two.
    func columns(_ text: Substring) -> Int {
        text.unicodeScalars.reduce(0) { $0 + ($1.value >= 0x1100 && $1.value != 0x2026 ? 2 : 1) }
    }

    static let pay = Activity("支払い") { (_: ActivityContext, amount: Int) -> Int in amount }
    static let ship = Activity("ship") { (_: ActivityContext, amount: Int) -> Int in amount }
    static let order = Workflow("注文処理") { (ctx: WorkflowContext, amount: Int) -> Int in try await ship(ctx, try await pay(ctx, amount)) }

    @Test func tablesAlignWideCharacters() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await create(1, in: store, workflow: "注文処理", id: { _ in "注文-1" })
            try await create(1, in: store, workflow: "🚀launch", id: { _ in "🚀-2" })
            try await create(1, in: store, workflow: "plain", id: { _ in "plain-3" })
            let list = try await edda(["list", "--database", path])
            #expect(list.status == 0, "\(list.error)")
            let rows = list.output.split(separator: "\n").filter { $0.contains("running") }
            #expect(rows.count == 3, "\(list.output)")
            let statusColumns = Set(rows.map { row in columns(row[..<row.range(of: "running")!.lowerBound]) })
            #expect(statusColumns.count == 1, "STATUS starts at columns \(statusColumns):\n\(list.output)")

            // A file of its own: the app's worker would run the listed 注文処理 instance.
            let orders = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("orders.sqlite").path
            try await withTestApp(store: try SQLiteStore(path: orders)) { app in
                let result = try await app.start(Self.order, 5, instanceID: "o-1").result()
                #expect(result == 5)
            }
            let show = try await edda(["show", "o-1", "--database", orders])
            let steps = show.output.split(separator: "\n").filter { $0.contains("ActivityCompleted") }
            #expect(steps.count == 2, "\(show.output)")
            let kindColumns = Set(steps.map { row in columns(row[..<row.range(of: "ActivityCompleted")!.lowerBound]) })
            #expect(kindColumns.count == 1, "KIND starts at columns \(kindColumns):\n\(show.output)")
        }
    }

    @Test func migrateSaysWhetherItCreatedMigratedOrFoundTheSchemaAndRefusesANewerOne() async throws {
        try await withTemporaryDatabase { path in
            #expect(FileManager.default.createFile(atPath: path, contents: Data()))
            let created = try await edda(["migrate", "--database", path])
            #expect(created.status == 0, "\(created.error)")
            #expect(created.output.contains("created Edda's schema") && !created.output.contains("up to date"), "\(created.output)")
            let again = try await edda(["migrate", "--database", path, "--json"])
            #expect(objects(again.output).first?["schema"] as? String == "up_to_date", "\(again.output)\(again.error)")

            // A migration this build does not know: a newer Edda wrote the file.
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from a newer Edda')") }
            try queue.close()
            let newer = try await edda(["migrate", "--database", path])
            #expect(newer.status != 0, "\(newer.output)")
            #expect(newer.error.contains("has a newer schema than this edda") && !newer.output.contains("up to date"), "\(newer.output)\(newer.error)")
            let identifiers = try await DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
            #expect(identifiers.contains("v99: from a newer Edda"))
        }
    }

    static let waiter = Workflow("waiter") { (ctx: WorkflowContext, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }

    @Test func everyCommandThatActsPrintsJSON() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            try await withTestApp(store: store) { app in
                _ = try await app.start(Self.waiter, 0, instanceID: "w-1")
                _ = try await app.start(Self.waiter, 0, instanceID: "w-2")
                _ = try? await app.start(Self.greet, "", instanceID: "bad-1").result()
                for _ in 0..<2000 {
                    let (one, two) = (try await store.instance("w-1"), try await store.instance("w-2"))
                    if one?.readyAt != nil, two?.readyAt != nil { break }
                    try await Task.sleep(for: .milliseconds(5))
                }
                let sent = try await edda(["send-event", "--database", path, "--type", "go", "--data", "1", "--to", "w-1", "--id", "e-1", "--json"])
                let receipt = try #require(objects(sent.output).first, "\(sent.output)\(sent.error)")
                #expect(receipt["id"] as? String == "e-1" && receipt["delivered_to"] as? [String] == ["w-1"] && receipt["kept_for"] is NSNull)
                let dropped = try await edda(["send-event", "--database", path, "--type", "nobody", "--json"])
                #expect(objects(dropped.output).first?["delivered_to"] as? [String] == [], "\(dropped.output)\(dropped.error)")

                let cancel = try await edda(["cancel", "w-2", "--database", path, "--json"])
                let cancelled = try #require(objects(cancel.output).first, "\(cancel.output)\(cancel.error)")
                #expect(cancelled["instance_id"] as? String == "w-2" && cancelled["cancel_requested"] as? Bool == true)

                let retry = try await edda(["retry", "bad-1", "--database", path, "--json"])
                let retried = try #require(objects(retry.output).first, "\(retry.output)\(retry.error)")
                #expect(retried["instance_id"] as? String == "bad-1" && retried["retried_step"] is String, "\(retried)")
            }
            let copy = path + ".copy"
            let backup = try await edda(["backup", "--database", path, "--to", copy, "--json"])
            #expect(objects(backup.output).first?["copy"] as? String == copy, "\(backup.output)\(backup.error)")
            let outbox = try await edda(["outbox", "--database", path, "--json"])
            #expect(outbox.status == 0 && outbox.output.isEmpty, "\(outbox.output)\(outbox.error)")
        }
    }
}
