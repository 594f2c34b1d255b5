import Edda
import EddaHTTP
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `--json` on every `edda` command that prints, run as the built binary on a SQLite file (and,
/// for `start`, a live server): standard output is JSON objects only, one a line, each with the
/// keys the README's CLI section lists for the command.
@Suite("CLI: --json on every command", .timeLimit(.minutes(1)))
struct CLIJSONTests {
    static let instanceKeys: Set<String> = [
        "instance_id", "workflow_name", "service_name", "status", "waiting_for", "run", "input", "output", "error", "created_at", "updated_at",
        "ready_at", "cancel_requested", "parent_instance_id", "unreadable", "queue", "priority", "partition_key",
        "deadline", "workflow_deadline", "workflow_timeout_ms",
        "run_timeout_ms", "queue_deadline", "queue_timeout_ms", "cancellation_reason", "app_version",
    ]
    static let historyKeys: Set<String> = ["sequence", "step_id", "name", "kind", "failed", "retried", "attempts", "payload", "error", "recorded_at"]

    /// The keys of each command's objects: every subcommand `edda --help` lists.
    static let keys: [String: Set<String>] = [
        "list": instanceKeys,
        "show": instanceKeys.union(["history"]),
        "export": [
            "format", "instance_id", "workflow_name", "service_name", "run", "status", "input", "output", "error", "created_at", "updated_at", "history",
        ],
        "outbox": ["sequence", "id", "type", "source", "status", "attempts", "instance_id", "step_id", "last_error", "created_at", "published_at"],
        "start": ["instance_id", "workflow_name"],
        "cancel": ["instance_id", "cancel_requested"],
        "retry": ["instance_id", "retried_step", "requested_by", "workflow_name"],
        "fork": ["instance_id", "forked_from", "from_step", "copied_records", "rerun_steps", "notes"],
        "send-event": ["id", "type", "delivered_to", "kept_for"],
        "schedules": ScheduleDocument.keys,
        "serve": ["database", "url", "token_required"],
        "migrate": ["database", "schema"],
        "backup": ["database", "copy"],
        "prune": ["database", "older_than_seconds", "dry_run", "rows"],
        "queues": ["name", "concurrency", "worker_concurrency", "partitioned", "rate_limit", "queued", "running", "declared_at"],
        "versions": VersionText.keys,
    ]

    /// The subcommands `edda --help` lists.
    static func subcommands() async throws -> Set<String> {
        let help = try await EddaBinary.run(["--help"])
        #expect(help.status == 0, "\(help.error)")
        let section = help.output.components(separatedBy: "SUBCOMMANDS:").dropFirst().first ?? ""
        // A name is indented by two spaces; a wrapped description by more.
        return Set(section.split(separator: "\n").compactMap { $0.firstMatch(of: /^  ([a-z][a-z-]*)(\s|$)/).map { String($0.1) } })
    }

    @Test func everySubcommandTakesJSONAndIsCoveredHere() async throws {
        let subcommands = try await Self.subcommands()
        #expect(subcommands == Set(Self.keys.keys), "edda --help lists \(subcommands.sorted())")
        for command in subcommands.sorted() {
            let help = try await EddaBinary.run([command, "--help"])
            #expect(help.status == 0 && help.output.contains("--json"), "edda \(command) has no --json:\n\(help.output)")
        }
    }

    /// Each line of a run's standard output as a JSON object, recording an issue for any line that
    /// is not one, for a run that failed, and for keys other than `command`'s.
    func objects(_ result: EddaBinary.Result, _ command: String, keys: Set<String>? = nil) -> [[String: Any]] {
        #expect(result.status == 0, "edda \(command): \(result.error)")
        #expect(result.output.isEmpty || result.output.hasSuffix("\n"), "edda \(command): \(result.output)")
        var objects: [[String: Any]] = []
        for line in result.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                Issue.record("edda \(command) --json printed a line that is not a JSON object: \(line)")
                continue
            }
            let expected = keys ?? Self.keys[command] ?? []
            #expect(Set(object.keys) == expected, "edda \(command): \(Set(object.keys).symmetricDifference(expected).sorted())")
            objects.append(object)
        }
        return objects
    }

    struct Declined: Error {}
    static let notify = Activity("notify") { (ctx: ActivityContext, name: String) -> String in
        try ctx.enqueue(CloudEvent(type: "greeted", source: "/tests", subject: name))
        return "Hello, \(name)!"
    }
    static let greet = Workflow("greet") { (ctx: WorkflowContext, name: String) -> String in try await notify(ctx, name) }
    static let decline = Activity("decline") { (_: ActivityContext) -> Int in throw TerminalError("declined") }
    static let failing = Workflow("failing") { (ctx: WorkflowContext) -> Int in try await decline(ctx) }
    static let waiter = Workflow("waiter") { (ctx: WorkflowContext, _: Int) -> Int in try await ctx.waitForEvent(type: "go", as: Int.self).data }

    /// Runs `edda <arguments> --database <path> --json`: its objects, checked by ``objects(_:_:keys:)``.
    func edda(_ arguments: [String], on path: String, keys: Set<String>? = nil) async throws -> [[String: Any]] {
        objects(try await EddaBinary.run(arguments + ["--database", path, "--json"]), arguments[0], keys: keys)
    }

    /// Waits (up to 10 s) until a worker has admitted `id` from its queue.
    func waitUntilAdmitted(_ id: String, _ app: EddaApp) async throws {
        for _ in 0..<1000 where try await app.instance(id)?.status == .queued { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await app.instance(id)?.status == .running, "\(id) was admitted")
    }

    @Test func everyCommandPrintsJSONObjectsWithItsKeys() async throws {
        try await withTemporaryDatabase { path in
            let store = try SQLiteStore(path: path)
            var run = try await withTestApp(store: store) { app in
                try app.register(Self.greet)
                _ = try await app.start(Self.greet, "Ada", instanceID: "done-1").result()
                _ = try? await app.start(Self.failing, instanceID: "bad-1").result()
                _ = try await app.start(Self.waiter, 0, instanceID: "w-1")
                _ = try await app.start(Self.waiter, 0, instanceID: "w-2")

                let listed = try await edda(["list"], on: path)
                #expect(Set(listed.compactMap { $0["instance_id"] as? String }) == ["done-1", "bad-1", "w-1", "w-2"])
                let shown = try #require(try await edda(["show", "bad-1"], on: path).first)
                #expect((shown["error"] as? [String: Any]).map { Set($0.keys) } == ["error_type", "message"], "\(shown)")
                let history = try #require(shown["history"] as? [[String: Any]])
                #expect(!history.isEmpty && history.allSatisfy { Set($0.keys) == Self.historyKeys }, "\(history)")
                let exported = try #require(try await edda(["export", "bad-1"], on: path).first)
                let records = try #require(exported["history"] as? [[String: Any]])
                #expect(records.count == history.count && exported["format"] as? String == "edda.history.v1", "\(exported)")
                let outbox = try await edda(["outbox"], on: path)
                #expect(outbox.map { $0["type"] as? String } == ["greeted"] && outbox.first?["instance_id"] as? String == "done-1")

                let sent = try #require(try await edda(["send-event", "--type", "go", "--data", "1", "--to", "w-1"], on: path).first)
                #expect(sent["delivered_to"] as? [String] == ["w-1"] || sent["kept_for"] as? String == "w-1", "\(sent)")
                #expect(try await edda(["cancel", "w-2"], on: path).first?["cancel_requested"] as? Bool == true)
                #expect(try await edda(["retry", "bad-1"], on: path).first?["workflow_name"] as? String == "failing")
                let forked = try #require(try await edda(["fork", "done-1", "--from-step", "notify:1", "--as", "done-2"], on: path).first)
                #expect(forked["instance_id"] as? String == "done-2" && forked["rerun_steps"] as? [String] == ["notify:1"], "\(forked)")
                #expect(try await app.handle(for: Self.greet, instanceID: "done-2").result() == "Hello, Ada!")

                // A queue with one place: q-1 takes it (waiting for an event), q-2 waits in line.
                let slow = Queue("slow", concurrency: 1, rateLimit: .init(5, per: .seconds(60)))
                app.register(slow)
                _ = try await app.start(Self.waiter, 1, instanceID: "q-1", on: slow)
                try await waitUntilAdmitted("q-1", app)
                _ = try await app.start(Self.waiter, 2, instanceID: "q-2", on: slow, priority: 2)
                let queues = try await edda(["queues"], on: path)
                #expect(queues.count == 1 && queues.first?["name"] as? String == "slow", "\(queues)")
                #expect(queues.first?["running"] as? Int == 1 && queues.first?["queued"] as? Int == 1 && queues.first?["concurrency"] as? Int == 1)
                #expect((queues.first?["rate_limit"] as? [String: Any])?["limit"] as? Int == 5)
                let onQueue = try await edda(["list", "--queue", "slow"], on: path, keys: Self.keys["list"])
                #expect(Set(onQueue.compactMap { $0["instance_id"] as? String }) == ["q-1", "q-2"])
                let queued = try #require(try await edda(["show", "q-2"], on: path, keys: Self.keys["show"]!.union(["queue_position"])).first)
                #expect(queued["queue_position"] as? Int == 1 && queued["queue"] as? String == "slow" && queued["priority"] as? Int == 2)
                // An unversioned app: its unfinished instances (q-1 and q-2 at least) are counted under a null version.
                let versions = try await edda(["versions"], on: path)
                #expect(versions.count == 1 && versions.first?["version"] is NSNull, "\(versions)")
                #expect((versions.first?["unfinished"] as? Int ?? 0) >= 2 && versions.first?["queued"] as? Int == 1, "\(versions)")
                #expect(try await edda(["list", "--version", "1.0"], on: path, keys: Self.keys["list"]).isEmpty)
                try await schedules(on: path, app: app)

                // start goes through a running app's API.
                try await CLIServerTests().withServer(app) { base, _ in
                    let started = try await EddaBinary.run(
                        ["start", "greet", "--input", #"["Bo"]"#, "--instance-id", "s-1", "--server", base, "--json"]
                    )
                    #expect(objects(started, "start").first?["instance_id"] as? String == "s-1")
                    let waited = try await EddaBinary.run(["start", "greet", "--input", #"["Cy"]"#, "--server", base, "--wait", "--json"])
                    let result = objects(waited, "start", keys: Self.keys["start"]!.union(["status", "output"]))
                    #expect(result.count == 1 && result.first?["output"] as? String == "Hello, Cy!", "\(result)")
                }
                return ["list", "show", "export", "outbox", "send-event", "cancel", "retry", "fork", "queues", "versions", "schedules", "start"]
            }
            #expect(try await edda(["migrate"], on: path).first?["schema"] as? String == "up_to_date")
            #expect(try await edda(["backup", "--to", path + ".copy"], on: path).first?["copy"] as? String == path + ".copy")
            #expect(try await edda(["prune", "--older-than", "30d", "--dry-run"], on: path).first?["dry_run"] as? Bool == true)
            let served = try await CLIServerTests.serveFirstObject(["--database", path, "--port", "0", "--json"])
            #expect(Set(served.keys) == Self.keys["serve"])
            run += ["migrate", "backup", "prune", "serve"]
            #expect(Set(run) == Set(Self.keys.keys), "not run: \(Set(Self.keys.keys).subtracting(run).sorted())")
        }
    }

    /// `edda schedules list/create/pause/resume` print schedules; `trigger` and `backfill` the instances they ask for; `delete` the name.
    func schedules(on path: String, app: EddaApp) async throws {
        try await app.createSchedule("nightly", workflowNamed: "greet", spec: .every(.seconds(86_400)), input: JSONPayload(json: #"["Nightly"]"#))
        let listed = try await edda(["schedules", "list"], on: path)
        #expect(listed.map { $0["name"] as? String } == ["nightly"] && listed.first?["input"] as? [String] == ["Nightly"], "\(listed)")
        #expect(try await edda(["schedules", "pause", "nightly"], on: path).first?["paused"] as? Bool == true)
        #expect(try await edda(["schedules", "resume", "nightly"], on: path).first?["paused"] as? Bool == false)
        let requested: Set<String> = ["schedule", "instance_ids"]
        let triggered = try await edda(["schedules", "trigger", "nightly"], on: path, keys: requested)
        #expect((triggered.first?["instance_ids"] as? [String])?.first?.hasPrefix("sched:nightly:") == true, "\(triggered)")
        let range = ["--from", "2026-01-01T00:00:00Z", "--through", "2026-01-02T12:00:00Z"]
        let backfilled = try await edda(["schedules", "backfill", "nightly"] + range, on: path, keys: requested)
        #expect(backfilled.first?["instance_ids"] as? [String] == ["sched:nightly:2026-01-01T00:00:00Z", "sched:nightly:2026-01-02T00:00:00Z"])
        let created = try await edda(
            ["schedules", "create", "hourly", "--workflow", "greet", "--every", "1h", "--queue", "slow", "--priority", "1"], on: path
        )
        #expect(created.first?["queue"] as? String == "slow" && created.first?["priority"] as? Int == 1, "\(created)")
        #expect(try await edda(["schedules", "delete", "hourly"], on: path, keys: ["deleted"]).first?["deleted"] as? String == "hourly")
    }
}
