import ArgumentParser
import Edda
import EddaHTTP
import Foundation

/// `edda schedules …`: list, create, delete, pause, resume, trigger and backfill the schedules on the database.
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, create, delete, pause, resume, trigger and backfill schedules (each subcommand takes --json).",
        discussion: """
            These act on the database directly: a worker of an app that registers the schedule's workflow starts \
            the ticks, within its poll interval. A trigger or a backfill names the instances it asks for; each \
            tick's instance ID is sched:<name>:<tick in ISO 8601 UTC>, so a tick never starts twice.
            """,
        subcommands: [ListSchedules.self, Create.self, Delete.self, Pause.self, Resume.self, Trigger.self, Backfill.self]
    )

    /// Prints `schedule` as a line of the list, or as JSON.
    static func print(_ schedule: ScheduleRecord, json: Bool) {
        guard !json else { return JSONOutput.print(ScheduleDocument.document(schedule)) }
        let next = schedule.paused ? Terminal.paint("paused", .yellow) : (schedule.nextTick.map(ScheduleDocument.time) ?? "none")
        out(
            schedule.name.padding(24) + schedule.workflowName.padding(24) + "\(schedule.expression) (\(schedule.timeZone))".padding(32)
                + schedule.overlap.rawValue.padding(13) + Schedules.queueText(schedule).padding(16) + next
                + (schedule.lastInstanceID.map { "   last: \($0)" } ?? "")
        )
    }

    /// Where a schedule's ticks start: `-` for no queue, the queue's name, and `/<priority>` unless 0.
    static func queueText(_ schedule: ScheduleRecord) -> String {
        guard let queue = schedule.queue else { return "-" }
        return schedule.priority == 0 ? queue : "\(queue)/\(schedule.priority)"
    }

    struct ListSchedules: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the schedules with their next tick.")

        @OptionGroup var store: StoreOptions
        @OptionGroup var output: JSONFlag

        func run() async throws {
            let schedules = try await store.withStore(writable: false) { try await $0.schedules() }
            if !output.json {
                guard !schedules.isEmpty else { return out("no schedules in \(store.displayName)") }
                let heading = "NAME".padding(24) + "WORKFLOW".padding(24) + "SPEC".padding(32) + "OVERLAP".padding(13) + "QUEUE".padding(16)
                out(Terminal.paint(heading + "NEXT TICK", .bold))
            }
            for schedule in schedules { Schedules.print(schedule, json: output.json) }
        }
    }

    /// What pause, resume and trigger take: the database, the schedule's name, `--json`.
    struct Arguments: ParsableArguments {
        @OptionGroup var store: StoreOptions
        @Argument(help: "The schedule's name.") var name: String
        @OptionGroup var output: JSONFlag

        /// Runs `action` on an app on the database with the schedule's name.
        func run<Result: Sendable>(_ action: @escaping @Sendable (EddaApp, String) async throws -> Result) async throws -> Result {
            let name = name
            return try await store.withApp { try await action($0, name) }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a schedule: a worker of an app that registers its workflow starts its ticks.",
            discussion: """
                edda runs no workflow code, so it cannot check the input against the workflow: an app that registers \
                the workflow does, when it starts a tick (the API's POST /api/schedules checks it at once). A queue must \
                be declared in the database (an app that registers it declares it) and not partitioned.
                """
        )

        @OptionGroup var store: StoreOptions
        @Argument(help: "The schedule's name, unique in the database; part of every instance ID it starts.") var name: String
        @Option(help: ArgumentHelp("The workflow it starts (its registered name).", valueName: "name")) var workflow: String
        @Option(help: ArgumentHelp("Tick on a cron expression (5 or 6 fields), such as '0 2 * * *'.", valueName: "expression")) var cron: String?
        @Option(help: ArgumentHelp("Or tick at a fixed interval: a number and a unit (s, m, h or d), such as 15m.", valueName: "interval"))
        var every: String?
        @Option(help: "The IANA time zone the cron expression is read in, such as Europe/Paris (default UTC).") var timeZone: String?
        @Option(help: ArgumentHelp("The arguments of every instance as a JSON array, one element per argument.", valueName: "json"))
        var input = "[]"
        @Option(
            help: ArgumentHelp("What a tick does while the previous instance still runs: \(Create.policies).", valueName: "policy"),
            transform: Create.overlap
        )
        var overlap: Schedule.OverlapPolicy = .skip
        @Option(
            help: ArgumentHelp("How late a missed tick may still start, such as 60s or 1h (default 60s).", valueName: "duration"),
            transform: { try DurationText.parse($0, option: "--catch-up-window", allowed: ["s", "m", "h", "d"], example: "60s or 1h") }
        )
        var catchUpWindow: Duration = Schedule.defaultCatchUpWindow
        @Option(help: ArgumentHelp("Start each tick's instance on this queue: it waits queued for room.", valueName: "name")) var queue: String?
        @Option(help: "On --queue: lower numbers are admitted first.") var priority: Int?
        @OptionGroup var output: JSONFlag

        static let policies = Schedule.OverlapPolicy.allCases.map(\.rawValue).joined(separator: ", ")

        static func overlap(_ text: String) throws -> Schedule.OverlapPolicy {
            guard let policy = Schedule.OverlapPolicy(rawValue: text) else {
                throw ValidationError("--overlap takes one of \(policies); '\(text)' is not one.")
            }
            return policy
        }

        func validate() throws {
            _ = try spec()
            _ = try arguments()
            if queue == nil, priority != nil { throw ValidationError("--priority applies to a schedule on a queue: add --queue <name>.") }
        }

        /// The spec of `--cron` (in `--time-zone`) or `--every`: exactly one of them.
        func spec() throws -> ScheduleSpec {
            do {
                switch (cron, every) {
                case (let cron?, nil):
                    return try ScheduleSpec(expression: cron, timeZone: timeZone ?? "UTC")
                case (nil, let every?):
                    guard timeZone == nil else {
                        throw ValidationError("--time-zone applies to --cron: an interval ticks at its multiples since 1970 UTC. Leave it out.")
                    }
                    return try ScheduleSpec(expression: "@every " + every)
                default:
                    throw ValidationError("Give the schedule one of --cron '<expression>' (such as '0 2 * * *') or --every <interval> (such as 15m).")
                }
            } catch let error as ScheduleSpecError {
                throw ValidationError(error.description)
            }
        }

        func arguments() throws -> JSONPayload {
            guard (try? JSONSerialization.jsonObject(with: Data(input.utf8))) is [Any] else {
                throw ValidationError("--input must be a JSON array with one element per argument, such as '[\"all\"]' or '[{\"region\": \"eu\"}]'.")
            }
            return JSONPayload(json: input)
        }

        func run() async throws {
            let (name, workflow, spec, input, overlap, window) = (name, workflow, try spec(), try arguments(), overlap, catchUpWindow)
            let (queue, priority) = (queue, priority ?? 0)
            let created = try await store.withApp { app in
                try await app.createSchedule(
                    name, workflowNamed: workflow, spec: spec, input: input, overlap: overlap, catchUpWindow: window, queue: queue, priority: priority
                )
            }
            if !output.json { out("created schedule \(name); a worker of an app that registers '\(workflow)' starts its ticks") }
            Schedules.print(created, json: output.json)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a schedule: no more ticks start. The instances it started are kept.",
            discussion: "A schedule declared in code is written again when an app that registers it starts."
        )
        @OptionGroup var schedule: Arguments

        func run() async throws {
            try await schedule.run { try await $0.deleteSchedule($1) }
            guard !schedule.output.json else { return JSONOutput.print(["deleted": schedule.name]) }
            out("deleted schedule \(schedule.name)")
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a schedule: no tick starts until it is resumed.")
        @OptionGroup var schedule: Arguments

        func run() async throws {
            Schedules.print(try await schedule.run { try await $0.pauseSchedule($1) }, json: schedule.output.json)
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused schedule from now on (ticks missed while paused do not start).")
        @OptionGroup var schedule: Arguments

        func run() async throws {
            Schedules.print(try await schedule.run { try await $0.resumeSchedule($1) }, json: schedule.output.json)
        }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a schedule's workflow now, whatever its spec, overlap policy or pause.")
        @OptionGroup var schedule: Arguments

        func run() async throws {
            let id = try await schedule.run { try await $0.triggerSchedule($1) }
            guard !schedule.output.json else { return JSONOutput.print(["schedule": schedule.name, "instance_ids": [id]]) }
            out("\(id) starts at a worker's next pass")
        }
    }

    struct Backfill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a schedule's ticks in a time range (those already started are not started again)."
        )

        @OptionGroup var store: StoreOptions
        @Argument(help: "The schedule's name.") var name: String
        @Option(help: "The range's start, ISO 8601 (2026-03-01T00:00:00Z).", transform: Backfill.time) var from: Date
        @Option(help: "The range's end, included, ISO 8601.", transform: Backfill.time) var through: Date
        @OptionGroup var output: JSONFlag

        static func time(_ text: String) throws -> Date {
            guard let date = try? Date(text, strategy: .iso8601) else {
                throw ValidationError("'\(text)' is not an ISO 8601 time; write it as 2026-03-01T00:00:00Z.")
            }
            return date
        }

        func run() async throws {
            let (name, from, through) = (name, from, through)
            let ids = try await store.withApp { try await $0.backfillSchedule(name, from: from, through: through) }
            guard !output.json else { return JSONOutput.print(["schedule": name, "instance_ids": ids]) }
            out(ids.isEmpty ? "no tick of \(name) in that range" : "\(ids.count) tick(s) start at a worker's next pass:")
            for id in ids { out("  \(id)") }
        }
    }
}
