import ArgumentParser
import AsyncHTTPClient
import Edda
import EddaHTTP
import EddaPostgres
import EddaSQLite
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel an instance: it stops at its next step, compensates, and ends cancelled (the app's worker runs it)."
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    @OptionGroup var output: JSONFlag

    func run() async throws {
        let id = instanceID
        switch try await store.withApp({ try await $0.requestCancellation(of: id) }) {
        case .requested:
            output.json ? JSONOutput.print(["instance_id": id, "cancel_requested": true]) : out("cancellation requested for \(id)")
        case .finished(let instance):
            throw CLIError("instance \(id) already \(instance.status); nothing to cancel (nothing was changed).")
        case .notFound:
            throw CLIError("No instance has ID \(id) in \(store.displayName); nothing was cancelled. `edda list` shows the instances.")
        }
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a failed instance again from its failed step (recorded steps replay; compensations that ran are not undone).",
        discussion: """
            The retry is recorded in the instance's history (a Retried record: by cli, when, which step, and the failure \
            moved to the archive; `edda show` lists it). edda runs no workflow code: the instance runs when an app that \
            registers its workflow runs on the database.
            """
    )

    @OptionGroup var store: StoreOptions

    @Argument(help: "The instance ID.")
    var instanceID: String

    @OptionGroup var output: JSONFlag

    func run() async throws {
        let id = instanceID
        let (step, workflow) = try await store.withApp { app in
            let step = try await app.retry(id, requestedBy: "cli")
            return (step, try await app.instance(id)?.workflowName)
        }
        guard !output.json else {
            return JSONOutput.print(["instance_id": id, "retried_step": step ?? NSNull(), "requested_by": "cli", "workflow_name": workflow ?? NSNull()])
        }
        out("\(instanceID) is ready to run again" + (step.map { " from step \($0)" } ?? "") + "; the retry is recorded in its history (by cli).")
        // edda runs no workflow code: say who will.
        out("edda runs no workflows: it runs when an app that registers workflow '\(workflow ?? "?")' runs on \(store.displayName).")
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
    @OptionGroup var output: JSONFlag

    func validate() throws {
        if let data, (try? JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed])) == nil {
            throw ValidationError("--data must be JSON, such as '42', '\"text\"' or '{\"amount\": 10}'.")
        }
    }

    func run() async throws {
        let payload = data.map { Data($0.utf8) }
        let event = CloudEvent(
            id: id ?? UUID().uuidString, type: type, source: source, data: payload, dataContentType: payload == nil ? nil : "application/json"
        )
        let to = to
        // Who got it now, and whom it is kept for.
        let (deliveredTo, keptFor) = try await store.withApp { app -> ([String], String?) in
            guard let to else { return (try await app.sendEvent(event), nil) }
            return try await app.sendEvent(event, to: to) ? ([to], nil) : ([], to)
        }
        if output.json {
            return JSONOutput.print(["id": event.id, "type": type, "delivered_to": deliveredTo, "kept_for": keptFor ?? NSNull()])
        }
        if let keptFor {
            out("kept for \(keptFor) until it waits for '\(type)'")
        } else {
            out(deliveredTo.isEmpty ? "nobody waits for '\(type)': dropped" : "delivered to \(deliveredTo.joined(separator: ", "))")
        }
    }
}

/// The bearer token for the HTTP commands: `EDDA_TOKEN`, or the first line of a file (never an
/// argument, which other users of the machine could read in the process list).
struct TokenOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "A file whose first line is the bearer token.",
            discussion: "Without it, the token is $EDDA_TOKEN when that is set and not empty; with it, $EDDA_TOKEN is not read."
        )
    )
    var tokenFile: String?

    func token() throws -> String? {
        if let tokenFile {
            do {
                let text = try String(contentsOfFile: tokenFile, encoding: .utf8)
                return text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) }
            } catch {
                throw CLIError("Cannot read the token file \(tokenFile): \(error.localizedDescription)")
            }
        }
        return ProcessInfo.processInfo.environment["EDDA_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

struct Start: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a workflow through a running app's HTTP API.",
        discussion: """
            The CLI cannot run or validate your workflows: their code is in your app. So start asks the app, \
            which serves EddaHTTP (see the README), to decode and validate the input and create the instance.
            """
    )

    @Argument(help: "The workflow's registered name.")
    var workflow: String

    @Option(help: ArgumentHelp("The arguments as a JSON array, one element per argument.", valueName: "json"))
    var input = "[]"

    @Option(help: "The instance ID (a new UUID by default).")
    var instanceID: String?

    @Option(help: ArgumentHelp("Start it on this queue, which the app registers: it waits queued for room.", valueName: "name"))
    var queue: String?

    @Option(help: "On --queue: lower numbers are admitted first.")
    var priority: Int?

    @Option(help: "On --queue: refused while another queued or running instance there holds this ID.")
    var deduplicationID: String?

    @Option(help: "On a partitioned --queue (required there): the partition whose limits it counts against.")
    var partitionKey: String?

    @Option(
        help: ArgumentHelp("On --queue: cancel it if still queued this long from now, such as 30s or 5m.", valueName: "duration"),
        transform: { try Start.timeout($0, option: "--queue-timeout") }
    )
    var queueTimeout: Duration?

    @Option(
        help: ArgumentHelp(
            "The workflow timeout, from now (queued time included): a number and a unit, such as 500ms, 30s, 5m or 2h.", valueName: "duration"
        ),
        transform: { try Start.timeout($0, option: "--timeout") }
    )
    var timeout: Duration?

    @Option(
        help: ArgumentHelp("The timeout of each run, such as 5m.", valueName: "duration"),
        transform: { try Start.timeout($0, option: "--run-timeout") }
    )
    var runTimeout: Duration?

    @Option(help: ArgumentHelp("The app's HTTP API.", discussion: "Defaults to $EDDA_SERVER, then http://127.0.0.1:8080."))
    var server: String?

    @OptionGroup var token: TokenOptions

    @Flag(help: "Wait until the instance finishes, then print its output or error.")
    var wait = false

    @Flag(help: "Print the instance ID (and with --wait its status and output or error) as one JSON object.")
    var json = false

    func validate() throws {
        _ = try arguments()
        if queue == nil, priority != nil || deduplicationID != nil || partitionKey != nil || queueTimeout != nil {
            throw ValidationError(
                "--priority, --deduplication-id, --partition-key and --queue-timeout apply to a start on a queue: add --queue <name>."
            )
        }
    }

    /// A timeout option's duration: above zero, in ms, s, m, h or d.
    static func timeout(_ text: String, option: String) throws -> Duration {
        try DurationText.parse(text, option: option, allowed: ["ms", "s", "m", "h", "d"], zeroAllowed: false, example: "500ms, 30s, 5m or 2h")
    }

    func arguments() throws -> [Any] {
        guard let arguments = try? JSONSerialization.jsonObject(with: Data(input.utf8)) as? [Any] else {
            throw ValidationError("--input must be a JSON array with one element per argument, such as '[{\"orderID\": \"ORD-1\"}]' or '[\"ada@example.com\", \"Ada\"]'.")
        }
        return arguments
    }

    func run() async throws {
        let base = (server ?? ProcessInfo.processInfo.environment["EDDA_SERVER"] ?? "http://127.0.0.1:8080").trimmingSuffix("/")
        let api = APIClient(base: base, token: try token.token())
        defer { api.shutdown() }
        var body: [String: Any] = ["input": try arguments()]
        if let instanceID { body["instance_id"] = instanceID }
        if let queue { body["queue"] = queue }
        if let priority { body["priority"] = priority }
        if let deduplicationID { body["deduplication_id"] = deduplicationID }
        if let partitionKey { body["partition_key"] = partitionKey }
        if let queueTimeout { body["queue_timeout_ms"] = queueTimeout.milliseconds }
        if let timeout { body["timeout_ms"] = timeout.milliseconds }
        if let runTimeout { body["run_timeout_ms"] = runTimeout.milliseconds }
        let created: [String: Any]
        do {
            created = try await api.send("POST", "/api/workflows/\(APIClient.pathComponent(workflow))/instances", body: body)
        } catch let error as APIClient.Failure where error.status == 404 {
            // `edda serve` answers the API but knows no workflow: say so rather than "not registered".
            if let listed = try? await api.send("GET", "/api/workflows"), (listed["workflows"] as? [Any])?.isEmpty == true {
                throw CLIError(
                    "The server at \(base) has no workflows registered, so it cannot start '\(workflow)'. It is probably `edda serve`, "
                        + "which runs no workflow code. Pass the address of your app, the one that registers '\(workflow)' and serves EddaHTTP, "
                        + "with --server or EDDA_SERVER."
                )
            }
            throw error
        }
        guard let id = created["instance_id"] as? String else { throw CLIError("The server at \(base) answered without an instance ID.") }
        guard wait else {
            return json ? JSONOutput.print(["instance_id": id, "workflow_name": workflow]) : out("started \(id)")
        }
        if !json { out("started \(id)") }
        let (status, detail) = try await Progress.during("waiting for \(id)") {
            while true {
                let instance = try await api.send("GET", "/api/instances/\(APIClient.pathComponent(id))")
                if let status = InstanceStatus(rawValue: instance["status"] as? String ?? ""), status.isTerminal {
                    return (status, APIClient.text(status == .completed ? instance["output"] : instance["error"]))
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        if json {
            let value = (try? JSONSerialization.jsonObject(with: Data(detail.utf8), options: [.fragmentsAllowed])) ?? detail
            JSONOutput.print(["instance_id": id, "workflow_name": workflow, "status": status.rawValue, status == .completed ? "output" : "error": value])
        } else {
            out("\(Terminal.status(status)): \(detail)")
        }
        if status != .completed { throw ExitCode.failure }
    }
}

/// Calls the JSON API of a running app.
struct APIClient {
    let base: String
    let token: String?
    /// Fails at once when nothing listens (the shared client retries connecting until its deadline).
    let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    init(base: String, token: String?) {
        self.base = base
        self.token = token
    }

    func shutdown() {
        http.shutdown { _ in }
    }

    /// Sends a request and returns the JSON object answered; an error answer throws its message.
    func send(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw CLIError(
                "Cannot reach an Edda app at \(base) (\(error)). start needs the app that registers the workflow, serving EddaHTTP; "
                    + "pass its address with --server or EDDA_SERVER."
            )
        }
        let document = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any]
        guard (200..<300).contains(response.status.code), let document else {
            let error = document?["error"] as? [String: Any]
            throw Failure(
                status: Int(response.status.code),
                description: "\(error?["message"] as? String ?? "The server answered \(response.status).") (HTTP \(response.status.code)\(error?["type"].map { ", \($0)" } ?? ""))"
            )
        }
        return document
    }

    /// An error answer: its HTTP status and the server's message.
    struct Failure: Error, CustomStringConvertible {
        var status: Int
        var description: String
    }

    static func pathComponent(_ text: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func text(_ value: Any?) -> String {
        guard let value, !(value is NSNull) else { return "null" }
        return (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the viewer, the JSON API and the CloudEvents ingress on a database.",
        discussion: """
            It runs no worker (the app's own processes run the instances) and knows no workflow code: its start \
            form lists no workflows, and `edda start` sent to it says so. Serve EddaHTTP from your app to start \
            workflows from the viewer or with `edda start`.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(help: "The address to bind.") var host = "127.0.0.1"
    @Option(help: "The port.") var port = 8080
    @OptionGroup var token: TokenOptions
    @Option(help: "Another name the server answers to in the Host header (repeatable; loopback names and --host always).")
    var allowedHost: [String] = []

    @Flag(help: "Print the address served (and the database) as one JSON object.")
    var json = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port takes a port number from 0 to 65535, not \(port).") }
    }

    func run() async throws {
        let configuration = EddaHTTP.Configuration(host: host, port: port, bearerToken: try token.token(), allowedHosts: allowedHost)
        let (name, json) = (store.displayName, json)
        do {
            try await store.withApp { app in
                var logger = StoreOptions.logger
                logger.logLevel = .warning   // shows EddaHTTP's warning about an unprotected non-loopback address
                // Printed once the server listens, with the port it got (--port 0 picks a free one).
                let server = EddaHTTP(app: app, configuration: configuration).server(logger: logger) { port in
                    let url = "http://\(configuration.host):\(port)/"
                    if json {
                        JSONOutput.print(["database": name, "url": url, "token_required": configuration.bearerToken != nil])
                    } else {
                        out("serving \(name) on \(url)\(configuration.bearerToken == nil ? "" : " (token required)")")
                    }
                }
                let group = ServiceGroup(
                    configuration: ServiceGroupConfiguration(
                        services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint], logger: StoreOptions.logger
                    )
                )
                try await group.run()
            }
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw CLIError("Port \(port) on \(host) is in use by another program; pick a free one with --port (such as --port \(port == 8080 ? 8081 : port + 1)).")
        } catch let error as IOError where error.errnoCode == EACCES {
            throw CLIError("Port \(port) on \(host) needs more rights than this user has; pick one above 1023 with --port.")
        } catch let error as IOError where error.errnoCode == EADDRNOTAVAIL {
            throw CLIError("\(host) is not an address of this machine; pass one of its addresses with --host (127.0.0.1 by default).")
        }
    }
}
