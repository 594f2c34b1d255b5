import ArgumentParser
import Edda
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

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List instances, newest first.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Only instances with this status (running, compensating, completed, failed, cancelled).")
    var status: String?

    @Option(help: "Only instances of this workflow.")
    var workflow: String?

    @Option(help: ArgumentHelp("Only instances whose input has this key (or dotted path) and value.", valueName: "key=value"))
    var input: String?

    @Option(help: ArgumentHelp("Only instances created at or after this time.", valueName: "2026-11-25 or 2026-11-25T14:30:00Z"))
    var createdFrom: String?

    @Option(help: ArgumentHelp("Only instances created before this time.", valueName: "time"))
    var createdBefore: String?

    @Option(help: "At most this many.")
    var limit = 50

    @Option(help: "Start after this cursor: the one printed at the end of the previous page.")
    var after: String?

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() async throws {
        var query = InstanceQuery(status: try parseStatus(status, among: InstanceStatus.all), workflowName: workflow, limit: limit)
        if let after {
            guard let cursor = InstanceCursor(after) else {
                throw ValidationError("'\(after)' is not a cursor; pass the value printed after 'next page: --after'.")
            }
            query.after = cursor
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
        let page = try await store.withStore(writable: false) { [query] in try await $0.instances(matching: query) }
        if json {
            for instance in page.instances {
                out(try JSONPayload.encode(InstanceSummary(instance)).json)
            }
            return
        }
        guard !page.instances.isEmpty else {
            out("No instances.")
            return
        }
        out(Terminal.paint("INSTANCE".padding(38) + "WORKFLOW".padding(24) + "STATUS".padding(13) + "CREATED", .bold))
        for instance in page.instances {
            out(
                instance.instanceID.padding(38) + instance.workflowName.padding(24) + Terminal.status(instance.status, width: 13)
                    + instance.createdAt.iso8601 + (instance.unreadable == nil ? "" : Terminal.paint("  ⚠ unreadable", .red))
            )
        }
        for problem in page.instances.compactMap(\.unreadable) {
            out(Terminal.paint("⚠ \(problem)", .red))
        }
        if let next = page.nextCursor {
            out("next page: --after '\(next)'")
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show one instance: input, output or error, and its history as a table (failed steps marked ✗, in red on a terminal)."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    @Flag(help: "Only the failed records of the history.")
    var failed = false

    func run() async throws {
        let id = instanceID
        let (found, history) = try await store.withStore(writable: false) { store in
            guard let instance = try await store.instance(id) else { return (WorkflowInstance?.none, [HistoryEvent]()) }
            return (instance, try await store.history(of: id))
        }
        guard let instance = found else {
            throw CLIError("No instance with ID \(instanceID) in \(store.displayName).")
        }
        out("instance:  \(instance.instanceID)")
        out("workflow:  \(instance.workflowName) (service \(instance.serviceName), run \(instance.runNumber))")
        out("status:    \(Terminal.status(instance.status))\(instance.cancelRequested && !instance.status.isTerminal ? " (cancel requested)" : "")")
        if let parent = instance.parentInstanceID { out("parent:    \(parent)") }
        out("created:   \(instance.createdAt.iso8601)")
        out("updated:   \(instance.updatedAt.iso8601)")
        if let readyAt = instance.readyAt, instance.leaseOwner == nil, !instance.status.isTerminal {
            out("waiting:   until \(readyAt == .distantFuture ? "an event or message" : readyAt.iso8601)")
        }
        out("input:     \(instance.input.json)")
        if let output = instance.output { out("output:    \(output.json)") }
        if let error = instance.error { out("error:     \(Terminal.paint("\(error)", .red))") }
        if let problem = instance.unreadable { out("⚠          \(Terminal.paint(problem, .red))") }
        let shown = failed ? history.filter(\.isFailure) : history
        out("history:   \(history.count) record\(history.count == 1 ? "" : "s")\(failed ? ", \(shown.count) failed" : "")")
        guard !shown.isEmpty else { return }
        let stepWidth = min(max(shown.map(\.stepID.displayWidth).max() ?? 4, 4) + 1, 40)
        out(Terminal.paint("   " + "#".padding(6) + "STEP".padding(stepWidth) + "KIND".padding(22) + "TRIES".padding(6) + "RECORDED".padding(26) + "RESULT OR ERROR", .bold))
        for event in shown {
            let attempts = event.retry.map { "\($0.totalAttempts)\($0.exhausted ? "!" : "")" } ?? "1"
            let detail = event.error.map { "\($0)" } ?? event.payload?.json ?? ""
            let line = (event.isFailure ? " ✗ " : "   ") + "\(event.sequence)".padding(6) + event.stepID.clipped(stepWidth - 1).padding(stepWidth)
                + event.kind.rawValue.padding(22) + attempts.padding(6) + event.recordedAt.iso8601.padding(26) + detail.clipped(80)
            out(event.isFailure ? Terminal.paint(line, .red) : line)
        }
    }
}

extension HistoryEvent {
    var isFailure: Bool { HistoryEventKind.failures.contains(kind) }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List transactional outbox events, oldest first.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Only events with this status (pending, processing, published, failed, invalid, expired).")
    var status: String?

    @Option(help: "At most this many.")
    var limit = 50

    func run() async throws {
        let statusFilter = try parseStatus(status, among: OutboxStatus.allCases)
        let limit = limit
        let events = try await store.withStore(writable: false) { try await $0.outboxEvents(status: statusFilter, limit: limit) }
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
    }
}

struct InstanceSummary: Encodable {
    var instance_id: String
    var workflow_name: String
    var status: String
    var created_at: String
    var error: ErrorRecord?
    var unreadable: String?

    init(_ instance: WorkflowInstance) {
        instance_id = instance.instanceID
        workflow_name = instance.workflowName
        status = instance.status.rawValue
        created_at = instance.createdAt.iso8601
        error = instance.error
        unreadable = instance.unreadable
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

    func run() async throws {
        guard !store.isPostgres else {
            throw CLIError("edda backup copies SQLite files; back up a PostgreSQL database with pg_dump (the schema named in the URL).")
        }
        let destination = to
        try await store.withStore(writable: false) { opened in
            guard let sqlite = opened as? SQLiteStore else { return }
            try await Progress.during("backing up") { try sqlite.backup(to: destination) }
        }
        out("\(store.displayName) copied to \(to)")
    }
}
