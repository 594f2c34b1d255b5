import ArgumentParser
import Edda
import EddaHTTP
import EddaSQLite
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct EddaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda",
        abstract: "Inspect Edda workflow instances and their history.",
        discussion: "Reading works while a worker process runs on the same SQLite file.",
        subcommands: [List.self, Show.self, Outbox.self, Cancel.self, Retry.self, SendEvent.self, Serve.self, Migrate.self]
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

/// An app on the database for the commands that act (cancel, send an event, serve the API): it runs
/// no worker, so it works next to the app's own process, which owns the file's worker lock.
func actingApp(_ options: StoreOptions) throws -> EddaApp {
    guard FileManager.default.fileExists(atPath: options.database) else {
        throw ValidationError("No database at \(options.database). Pass --database with the path your app uses.")
    }
    // Never migrate a database an app runs on: its schema must already be the one this CLI knows.
    _ = try SQLiteStore(readingAt: options.database, logger: StoreOptions.logger)
    return EddaApp(store: try SQLiteStore(path: options.database, logger: StoreOptions.logger), serviceName: "edda-cli", logger: StoreOptions.logger)
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel an instance: it stops at its next step, compensates, and ends cancelled (the app's worker runs it)."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    func run() async throws {
        try await actingApp(store).cancel(instanceID)
        out("cancellation requested for \(instanceID)")
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a failed instance again from its failed step (recorded steps replay; compensations that ran are not undone)."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    func run() async throws {
        let step = try await actingApp(store).retry(instanceID)
        out("\(instanceID) is running again" + (step.map { " from step \($0)" } ?? ""))
    }
}

struct SendEvent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send-event", abstract: "Send a CloudEvent to the instances waiting for its type, or to one instance."
    )

    @OptionGroup var store: StoreOptions

    @Option(help: "The event type, such as payment.completed.") var type: String
    @Option(help: "Who sends it (a URI reference).") var source = "/edda-cli"
    @Option(help: "The event's data, as JSON.") var data: String?
    @Option(help: "Send it to this instance only (kept until it waits for the type).") var to: String?
    @Option(help: "The event ID (a new UUID by default).") var id: String?

    func run() async throws {
        let payload = data.map { Data($0.utf8) }
        if let payload, (try? JSONSerialization.jsonObject(with: payload, options: [.fragmentsAllowed])) == nil {
            throw ValidationError("--data must be JSON, such as '42', '\"text\"' or '{\"amount\": 10}'.")
        }
        let event = CloudEvent(
            id: id ?? UUID().uuidString, type: type, source: source, data: payload, dataContentType: payload == nil ? nil : "application/json"
        )
        let app = try actingApp(store)
        if let to {
            let deliveredNow = try await app.sendEvent(event, to: to)
            out(deliveredNow ? "delivered to \(to)" : "kept for \(to) until it waits for '\(type)'")
        } else {
            let receivers = try await app.sendEvent(event)
            out(receivers.isEmpty ? "nobody waits for '\(type)': dropped" : "delivered to \(receivers.joined(separator: ", "))")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the JSON API and the CloudEvents ingress on a database (no worker: the app's own process runs the instances)."
    )

    @OptionGroup var store: StoreOptions

    @Option(help: "The address to bind.") var host = "127.0.0.1"
    @Option(help: "The port.") var port = 8080
    @Option(help: "Require 'Authorization: Bearer <token>' (also read from EDDA_TOKEN).") var token: String?

    func run() async throws {
        let app = try actingApp(store)
        let configuration = EddaHTTP.Configuration(
            host: host, port: port, bearerToken: token ?? ProcessInfo.processInfo.environment["EDDA_TOKEN"]
        )
        let server = EddaHTTP(app: app, configuration: configuration).server(logger: StoreOptions.logger)
        out("serving \(store.database) on http://\(host):\(port)/api/instances")
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: StoreOptions.logger)
        )
        try await group.run()
    }
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
