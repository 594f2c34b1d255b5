import ArgumentParser
import Edda
import EddaSQLite
import Foundation
import Logging

@main
struct EddaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda",
        abstract: "Inspect Edda workflow instances and their history.",
        discussion: "Reading works while a worker process runs on the same SQLite file.",
        subcommands: [List.self, Show.self, Outbox.self, Migrate.self]
    )
}

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "The SQLite database file.")
    var database = "edda.sqlite"

    /// Opens the database for reading only: never migrates, never writes, so it is safe next to a
    /// running worker.
    func openStore() throws -> SQLiteStore {
        guard FileManager.default.fileExists(atPath: database) else {
            throw ValidationError("No database at \(database). Pass --database with the path your app uses.")
        }
        return try SQLiteStore(readingAt: database, logger: Self.logger)
    }

    static let logger: Logger = {
        var logger = Logger(label: "edda.cli")
        logger.logLevel = .warning
        return logger
    }()
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a database's schema up to date (the app does this itself when it opens it read-write)."
    )

    @OptionGroup var store: StoreOptions

    func run() async throws {
        guard FileManager.default.fileExists(atPath: store.database) else {
            throw ValidationError("No database at \(store.database). Pass --database with the path your app uses.")
        }
        _ = try SQLiteStore(path: store.database, logger: StoreOptions.logger)
        out("\(store.database): schema up to date")
    }
}

/// Writes a line with `FileHandle`, unbuffered.
func out(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

extension Date {
    var iso8601: String { formatted(.iso8601) }
}

/// The `--status` option's value, checked against the statuses there are.
func parseStatus<Status: RawRepresentable<String>>(_ text: String?, among all: [Status]) throws -> Status? {
    guard let text else { return nil }
    guard let status = Status(rawValue: text) else {
        throw ValidationError("Unknown status '\(text)'. Use one of: \(all.map(\.rawValue).joined(separator: ", ")).")
    }
    return status
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List instances, newest first.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Only instances with this status (running, completed, failed).")
    var status: String?

    @Option(help: "Only instances of this workflow.")
    var workflow: String?

    @Option(help: "At most this many.")
    var limit = 50

    @Option(help: "Start after this cursor: the one printed at the end of the previous page.")
    var after: String?

    @Flag(help: "One JSON object per line.")
    var json = false

    func run() async throws {
        let statusFilter = try parseStatus(status, among: InstanceStatus.all)
        var cursor: InstanceCursor?
        if let after {
            guard let parsed = InstanceCursor(after) else {
                throw ValidationError("'\(after)' is not a cursor; pass the value printed after 'next page: --after'.")
            }
            cursor = parsed
        }
        let page = try await store.openStore().instances(
            matching: InstanceQuery(status: statusFilter, workflowName: workflow, limit: limit, after: cursor)
        )
        let instances = page.instances
        if json {
            for instance in instances {
                out(try JSONPayload.encode(InstanceSummary(instance)).json)
            }
            return
        }
        guard !instances.isEmpty else {
            out("No instances.")
            return
        }
        out("INSTANCE".padding(38) + "WORKFLOW".padding(24) + "STATUS".padding(11) + "CREATED")
        for instance in instances {
            out(instance.instanceID.padding(38) + instance.workflowName.padding(24) + instance.status.rawValue.padding(11) + instance.createdAt.iso8601)
        }
        if let next = page.nextCursor {
            out("next page: --after '\(next)'")
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one instance: input, output or error, and its history.")

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    func run() async throws {
        let store = try store.openStore()
        guard let instance = try await store.instance(instanceID) else {
            throw ValidationError("No instance with ID \(instanceID) in \(self.store.database).")
        }
        out("instance:  \(instance.instanceID)")
        out("workflow:  \(instance.workflowName) (service \(instance.serviceName))")
        out("status:    \(instance.status)")
        out("created:   \(instance.createdAt.iso8601)")
        out("updated:   \(instance.updatedAt.iso8601)")
        out("input:     \(instance.input.json)")
        if let output = instance.output { out("output:    \(output.json)") }
        if let error = instance.error { out("error:     \(error)") }
        let history = try await store.history(of: instanceID)
        out("history:   \(history.count) record\(history.count == 1 ? "" : "s")")
        for event in history {
            var line = "  #\(event.sequence) \(event.recordedAt.iso8601) \(event.stepID) [\(event.kind)]"
            if let position = event.position { line += " position \(position)" }
            out(line)
            if let payload = event.payload { out("      result: \(payload.json)") }
            if let error = event.error { out("      error:  \(error)") }
            if let retry = event.retry, retry.totalAttempts > 1 || retry.exhausted {
                out("      retry:  \(retry.totalAttempts) attempts, \(retry.totalDurationMilliseconds) ms\(retry.exhausted ? ", exhausted" : "")")
            }
        }
    }
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
        let events = try await store.openStore().outboxEvents(status: statusFilter, limit: limit)
        guard !events.isEmpty else {
            out("No outbox events.")
            return
        }
        out("#".padding(6) + "TYPE".padding(28) + "STATUS".padding(11) + "ATTEMPTS".padding(9) + "INSTANCE / STEP")
        for event in events {
            out(
                "\(event.sequence)".padding(6) + event.event.type.padding(28) + event.status.rawValue.padding(11)
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

    init(_ instance: WorkflowInstance) {
        instance_id = instance.instanceID
        workflow_name = instance.workflowName
        status = instance.status.rawValue
        created_at = instance.createdAt.iso8601
        error = instance.error
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
