import ArgumentParser
import Edda
import EddaHTTP
import EddaSQLite
import Foundation

/// The `--status` option's value, checked against the statuses there are.
func parseStatus<Status: RawRepresentable<String>>(_ text: String?, among all: [Status]) throws -> Status? {
    guard let text else { return nil }
    guard let status = Status(rawValue: text) else {
        throw ValidationError("Unknown status '\(text)'. Use one of: \(all.map(\.rawValue).joined(separator: ", ")).")
    }
    return status
}

/// A day (`2026-11-25`, midnight UTC) or an ISO 8601 time (`2026-11-25T14:30:00Z`; UTC without a zone).
func parseTime(_ text: String, option: String) throws -> Date {
    for candidate in [text, text + "Z", text + ":00Z", text + "T00:00:00Z"] {
        if let date = try? Date(candidate, strategy: .iso8601) { return date }
    }
    throw ValidationError("\(option) takes a day (2026-11-25) or a time (2026-11-25T14:30:00Z), not '\(text)'.")
}

/// `--limit` of the commands that list: how many to print.
struct LimitOption: ParsableArguments {
    @Option(help: ArgumentHelp("At most this many; 0 for all.", discussion: "Defaults to 50 in a table, all with --json."))
    var limit: Int?

    func validate() throws {
        if let limit, limit < 0 {
            throw ValidationError("--limit takes how many to print (0 for all), not \(limit).")
        }
    }

    /// How many to print, or `nil` for all.
    func count(json: Bool) -> Int? {
        switch limit {
        case nil: json ? nil : 50
        case 0?: nil
        case let limit?: limit
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List instances, newest first.",
        discussion: """
            A table shows 50 and ends with the cursor of the next page: pass it to --after (and, past the first \
            page, the cursor of the previous one: pass it to --before). With --json, \
            every match is printed (one JSON object per line) unless --limit is given; when --limit cuts the \
            list short, the next page's cursor is printed on standard error.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: "Only instances with this status (queued, running, waiting, compensating, completed, failed, cancelled).")
    var status: String?

    @Option(help: "Only instances of this workflow.")
    var workflow: String?

    @Option(help: ArgumentHelp("Only instances started on this queue.", valueName: "name"))
    var queue: String?

    @Option(help: ArgumentHelp("Only instances of this application version (`edda versions` lists them).", valueName: "version"))
    var version: String?

    @Flag(help: "Only unversioned instances (started by an app with no applicationVersion); with --version, those too.")
    var unversioned = false

    @Option(help: ArgumentHelp("Only instances whose input has this key (or dotted path) and value.", valueName: "key=value"))
    var input: String?

    @Option(help: ArgumentHelp("Only instances created at or after this time.", valueName: "2026-11-25 or 2026-11-25T14:30:00Z"))
    var createdFrom: String?

    @Option(help: ArgumentHelp("Only instances created before this time.", valueName: "time"))
    var createdBefore: String?

    @OptionGroup var limit: LimitOption

    @Option(help: "Start after this cursor: the one printed at the end of the previous page.")
    var after: String?

    @Option(help: "Page back: the instances just newer than this cursor (the one printed after 'previous page').")
    var before: String?

    @Flag(help: "One JSON object per line: every match unless --limit is given.")
    var json = false

    /// Bad filters are usage errors, reported with this command's usage before anything is opened.
    func validate() throws {
        _ = try filters()
    }

    /// The query without its limit.
    func filters() throws -> InstanceQuery {
        var query = InstanceQuery(status: try parseStatus(status, among: InstanceStatus.all), workflowName: workflow)
        query.queue = queue
        if version != nil || unversioned {
            query.applicationVersions = Set<String?>(version.map { [$0] } ?? []).union(unversioned ? [nil] : [])
        }
        if let after {
            guard let cursor = InstanceCursor(after) else {
                throw ValidationError("'\(after)' is not a cursor; pass the value printed after 'next page: --after'.")
            }
            query.after = cursor
        }
        if let before {
            guard after == nil else { throw ValidationError("Give --after or --before, not both.") }
            guard let cursor = InstanceCursor(before) else {
                throw ValidationError("'\(before)' is not a cursor; pass the value printed after 'previous page: --before'.")
            }
            query.before = cursor
        }
        query.createdFrom = try createdFrom.map { try parseTime($0, option: "--created-from") }
        query.createdBefore = try createdBefore.map { try parseTime($0, option: "--created-before") }
        if let input {
            guard let equals = input.firstIndex(of: "="), equals != input.startIndex else {
                throw ValidationError("--input takes key=value, such as --input customer.email=ada@example.com.")
            }
            guard InstanceQuery.isValidInputKey(String(input[..<equals])) else {
                throw ValidationError("--input takes a key or a dotted path of keys before '=', such as customer.email, not '\(input[..<equals])'.")
            }
            query.inputKey = String(input[..<equals])
            query.inputValue = String(input[input.index(after: equals)...])
        }
        return query
    }

    func run() async throws {
        let (query, wanted) = (try filters(), limit.count(json: json))
        // Pages of at most 500 until `wanted` (or the last page): the cursor is where the next page
        // starts. With --before, pages are read backwards (newer and newer), each one in front.
        let (instances, next, previous) = try await store.withStore(writable: false) { store in
            var query = query
            var instances: [WorkflowInstance] = []
            var first: InstancePage?
            while true {
                query.limit = min(wanted.map { $0 - instances.count } ?? 500, 500)
                let page = try await store.instances(matching: query)
                if query.before != nil {
                    instances = page.instances + instances
                    let next = first?.nextCursor ?? page.nextCursor
                    first = first ?? page
                    guard let cursor = page.previousCursor else { return (instances, next, InstanceCursor?.none) }
                    if let wanted, instances.count >= wanted { return (instances, next, cursor) }
                    query.before = cursor
                } else {
                    instances += page.instances
                    first = first ?? page
                    let previous = first?.previousCursor
                    guard let cursor = page.nextCursor else { return (instances, InstanceCursor?.none, previous) }
                    if let wanted, instances.count >= wanted { return (instances, cursor, previous) }
                    query.after = cursor
                }
            }
        }
        if json {
            for instance in instances {
                JSONOutput.print(JSONOutput.instance(instance))
            }
            // Standard output stays one instance per line.
            if let next { FileHandle.standardError.write(Data("next page: --after '\(next)'\n".utf8)) }
            if let previous { FileHandle.standardError.write(Data("previous page: --before '\(previous)'\n".utf8)) }
            return
        }
        guard !instances.isEmpty else {
            out("No instances.")
            return
        }
        out(Terminal.paint("INSTANCE".padding(38) + "WORKFLOW".padding(24) + "STATUS".padding(13) + "CREATED".padding(26) + "WAITING FOR", .bold))
        let now = Date()
        for instance in instances {
            let waiting = instance.waitingFor.map { WaitText.summary($0, now: now).replacingOccurrences(of: "Waiting for ", with: "") } ?? ""
            out(
                instance.instanceID.padding(38) + instance.workflowName.padding(24) + Terminal.status(instance.displayStatus, width: 13)
                    + (waiting.isEmpty ? instance.createdAt.iso8601 : instance.createdAt.iso8601.padding(26) + waiting)
                    + (instance.unreadable == nil ? "" : Terminal.paint("  ⚠ unreadable", .red))
            )
        }
        for problem in instances.compactMap(\.unreadable) {
            out(Terminal.paint("⚠ \(problem)", .red))
        }
        if let next {
            out("next page: --after '\(next)'")
        }
        if let previous {
            out("previous page: --before '\(previous)'")
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one instance: input, output or error, and its history as a table.",
        discussion: """
            A step's final failure is marked ✗ (in red on a terminal); a failed attempt after which the step \
            was tried again is marked ↻ (in yellow), whatever the later attempts did.
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    @Flag(help: "Only the failed records of the history: final failures and failed attempts.")
    var failed = false

    @Flag(help: "Print the instance and its history (under \"history\") as one JSON object.")
    var json = false

    func run() async throws {
        let id = instanceID
        let (found, history, position) = try await store.withStore(writable: false) { store in
            guard let instance = try await store.instance(id) else { return (WorkflowInstance?.none, [HistoryEvent](), Int?.none) }
            let position = instance.status == .queued ? try await store.queuePosition(of: id) : nil
            return (instance, try await store.history(of: id), position)
        }
        guard let instance = found else {
            throw CLIError("No instance with ID \(instanceID) in \(store.displayName). `edda list` shows the instances.")
        }
        let shown = failed ? history.filter(\.isFailure) : history
        if json {
            var document = JSONOutput.instance(instance)
            if let position { document["queue_position"] = position }
            document["history"] = shown.map(JSONOutput.history)
            JSONOutput.print(document)
            return
        }
        out("instance:  \(instance.instanceID)")
        out("workflow:  \(instance.workflowName) (service \(instance.serviceName), run \(instance.runNumber))")
        out("status:    \(Terminal.status(instance.displayStatus))\(instance.cancelRequested && !instance.status.isTerminal ? " (cancel requested)" : "")")
        if let parent = instance.parentInstanceID { out("parent:    \(parent)") }
        if let version = instance.applicationVersion { out("version:   \(version)") }
        if let queue = instance.queue {
            let partition = instance.partitionKey.map { ", partition \($0)" } ?? ""
            out("queue:     \(queue) (priority \(instance.priority)\(partition))\(position.map { ", " + QueueText.position($0) } ?? "")")
        }
        out("created:   \(instance.createdAt.iso8601)")
        out("updated:   \(instance.updatedAt.iso8601)")
        if let wait = instance.waitingFor {
            let now = Date()
            out("waiting:   \(WaitText.summary(wait, now: now))")
            if let deadline = wait.deadline {
                out("deadline:  \(WaitText.localTime(deadline)) (\(WaitText.relative(deadline, now: now)); \(deadline.iso8601) UTC)")
            }
        }
        if let timeout = WaitText.deadline(of: instance, now: Date()) {
            let at = instance.deadline.flatMap { instance.status.isTerminal ? nil : " (\($0.iso8601) UTC)" } ?? ""
            out("timeout:   \(timeout)\(at)")
        }
        if let reason = WaitText.cancellationReason(of: instance) { out("reason:    \(reason)") }
        out("input:     \(instance.input.json)")
        if let output = instance.output { out("output:    \(output.json)") }
        if let error = instance.error { out("error:     \(Terminal.paint("\(error)", .red))") }
        if let problem = instance.unreadable { out("⚠          \(Terminal.paint(problem, .red))") }
        out("history:   \(history.count) record\(history.count == 1 ? "" : "s")\(failed ? ", \(shown.count) failed" : "")")
        guard !shown.isEmpty else { return }
        let stepWidth = min(max(shown.map(\.stepID.displayWidth).max() ?? 4, 4) + 1, 40)
        out(Terminal.paint("   " + "#".padding(6) + "STEP".padding(stepWidth) + "KIND".padding(22) + "TRIES".padding(6) + "RECORDED".padding(26) + "RESULT OR ERROR", .bold))
        for event in shown {
            let attempts = event.retry.map { "\($0.totalAttempts)\($0.exhausted ? "!" : "")" } ?? "1"
            let detail = event.error.map { "\($0)" } ?? event.payload?.json ?? ""
            let mark = event.isFinalFailure ? " ✗ " : event.isRetriedAttempt ? " ↻ " : "   "
            let line = mark + "\(event.sequence)".padding(6) + event.stepID.clipped(stepWidth - 1).padding(stepWidth)
                + event.kind.rawValue.padding(22) + attempts.padding(6) + event.recordedAt.iso8601.padding(26) + detail.clipped(80)
            out(event.isFinalFailure ? Terminal.paint(line, .red) : event.isRetriedAttempt ? Terminal.paint(line, .yellow) : line)
        }
        // The marks used, explained.
        let legend = [(shown.contains(where: \.isFinalFailure), "✗ a final failure"), (shown.contains(where: \.isRetriedAttempt), "↻ a failed attempt, tried again")]
        if legend.contains(where: \.0) {
            out(Terminal.paint(legend.filter(\.0).map(\.1).joined(separator: "   "), .grey))
        }
    }
}

extension HistoryEvent {
    /// Any record of something going wrong: `--failed` shows these.
    var isFailure: Bool { HistoryEventKind.failures.contains(kind) }
    /// A failed attempt after which the step was tried again: not the step's outcome.
    var isRetriedAttempt: Bool { kind == .attemptFailed }
    /// A step's final failure (a failed activity or compensation, a wait past its deadline).
    var isFinalFailure: Bool { isFailure && !isRetriedAttempt }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List transactional outbox events, oldest first.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Only events with this status (pending, processing, published, failed, invalid, expired).")
    var status: String?

    @OptionGroup var limit: LimitOption

    @Flag(help: "One JSON object per line: every match unless --limit is given.")
    var json = false

    func validate() throws {
        _ = try parseStatus(status, among: OutboxStatus.allCases)
    }

    func run() async throws {
        let statusFilter = try parseStatus(status, among: OutboxStatus.allCases)
        let wanted = limit.count(json: json)
        // One more than asked for, to tell whether there are more.
        let fetching = wanted.map { $0 == .max ? $0 : $0 + 1 } ?? .max
        let fetched = try await store.withStore(writable: false) { try await $0.outboxEvents(status: statusFilter, limit: fetching) }
        let events = wanted.map { Array(fetched.prefix($0)) } ?? fetched
        let more = fetched.count > events.count ? "more events: pass a larger --limit, or --limit 0 for all" : nil
        if json {
            for event in events {
                JSONOutput.print(JSONOutput.outboxEvent(event))
            }
            if let more { FileHandle.standardError.write(Data((more + "\n").utf8)) }
            return
        }
        guard !events.isEmpty else {
            out("No outbox events.")
            return
        }
        out(Terminal.paint("#".padding(6) + "TYPE".padding(28) + "STATUS".padding(11) + "ATTEMPTS".padding(9) + "INSTANCE / STEP", .bold))
        for event in events {
            let status = event.status.rawValue.padding(11)
            out(
                "\(event.sequence)".padding(6) + event.event.type.padding(28) + ([.failed, .invalid, .expired].contains(event.status) ? Terminal.paint(status, .red) : status)
                    + "\(event.attempts)".padding(9) + "\(event.instanceID ?? "-") / \(event.stepID ?? "-")"
            )
            if let error = event.lastError { out("      last error: \(error)") }
        }
        if let more { out(more) }
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a SQLite database into a new file, consistent at one moment, while workers run on it.",
        discussion: """
            The .sqlite file alone is not a backup: recent commits may still be in its -wal file. This uses SQLite's \
            online backup (so does `sqlite3 app.sqlite ".backup copy.sqlite"`). For PostgreSQL, use pg_dump.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: "The new file to write (never overwritten).")
    var to: String

    @OptionGroup var output: JSONFlag

    func run() async throws {
        guard !store.isPostgres else {
            throw CLIError("edda backup copies SQLite files; back up a PostgreSQL database with pg_dump (the schema named in the URL).")
        }
        let destination = to
        try await store.withStore(writable: false) { opened in
            guard let sqlite = opened as? SQLiteStore else { return }
            try await Progress.during("backing up") { try sqlite.backup(to: destination) }
        }
        output.json ? JSONOutput.print(["database": store.displayName, "copy": to]) : out("\(store.displayName) copied to \(to)")
    }
}
