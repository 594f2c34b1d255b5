import Edda
import EddaHTTP
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `edda start` and `edda serve` against live servers: what they say when the server cannot start the
/// workflow or the port is taken, their `--json`, and their help.
@Suite("CLI: edda start and edda serve against servers", .timeLimit(.minutes(1)))
struct CLIServerTests {
    static let greet = Workflow("greet") { (_: WorkflowContext, name: String) -> String in "Hello, \(name)!" }

    /// A live EddaHTTP server on a free port of 127.0.0.1 for `body`, on `app`.
    func withServer(_ app: EddaApp, _ body: @escaping @Sendable (_ base: String, _ port: Int) async throws -> Void) async throws {
        let server = Application(router: EddaHTTP(app: app).router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await server.test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)", port)
        }
    }

    @Test func startSaysWhenTheServerHasNoWorkflowsRegistered() async throws {
        // What `edda serve` is: an app that registers no workflow.
        try await withTestApp { app in
            try await withServer(app) { base, _ in
                let started = try await EddaBinary.run(["start", "greet", "--input", "[\"Ada\"]", "--server", base])
                #expect(started.status != 0)
                #expect(
                    started.error.contains("The server at \(base) has no workflows registered") && started.error.contains("edda serve")
                        && started.error.contains("--server"),
                    "\(started.error)"
                )
            }
        }
    }

    @Test func startPrintsJSON() async throws {
        try await withTestApp { app in
            try app.register(Self.greet)
            try await withServer(app) { base, _ in
                let started = try await EddaBinary.run(["start", "greet", "--input", "[\"Ada\"]", "--instance-id", "j-1", "--server", base, "--json"])
                #expect(started.status == 0, "\(started.error)")
                let document = try #require(try JSONSerialization.jsonObject(with: Data(started.output.utf8)) as? [String: Any], "\(started.output)")
                #expect(document["instance_id"] as? String == "j-1" && document["workflow_name"] as? String == "greet")

                let waited = try await EddaBinary.run(["start", "greet", "--input", "[\"Bo\"]", "--server", base, "--wait", "--json"])
                #expect(waited.status == 0, "\(waited.error)")
                #expect(waited.output.split(separator: "\n").count == 1, "\(waited.output)")
                let result = try #require(try JSONSerialization.jsonObject(with: Data(waited.output.utf8)) as? [String: Any], "\(waited.output)")
                #expect(result["status"] as? String == "completed" && result["output"] as? String == "Hello, Bo!", "\(result)")
            }
        }
    }

    @Test func aBusyPortIsReportedWithTheOptionThatChangesIt() async throws {
        try await withTemporaryDatabase { path in
            _ = try SQLiteStore(path: path)
            try await withTestApp { app in
                try await withServer(app) { _, port in
                    let serve = try await EddaBinary.run(["serve", "--database", path, "--port", "\(port)"])
                    #expect(serve.status != 0)
                    #expect(serve.error.contains("Port \(port) on 127.0.0.1 is in use") && serve.error.contains("with --port"), "\(serve.error)")
                }
            }
        }
    }

    @Test func serveJSONSaysWhereItServes() async throws {
        try await withTemporaryDatabase { path in
            _ = try SQLiteStore(path: path)
            let document = try await Self.serveFirstObject(["--database", path, "--port", "0", "--json"])
            #expect(document["database"] as? String == path && document["token_required"] as? Bool == false, "\(document)")
            #expect((document["url"] as? String)?.hasPrefix("http://127.0.0.1:") == true, "\(document)")
            // --port 0: the port the system picked, printed once the server listens, not 0.
            let port = (document["url"] as? String)?.split(separator: ":").last?.split(separator: "/").first.flatMap { Int($0) }
            #expect((port ?? 0) > 0, "\(document)")
        }
    }

    /// The first line of `edda serve <arguments>` as a JSON object; the server is then stopped.
    static func serveFirstObject(_ arguments: [String]) async throws -> [String: Any] {
        let process = Process()
        process.executableURL = try EddaBinary.executable()
        process.arguments = ["serve"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        let line = await firstLine(of: output.fileHandleForReading)
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
    }

    /// The first line `handle` gives, read on a thread of its own (empty if it closes first).
    static func firstLine(of handle: FileHandle) async -> String {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var data = Data()
                while !data.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data += chunk
                }
                continuation.resume(returning: String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "")
            }
        }
    }

    @Test func tokenFileHelpTellsWhereTheTokenComesFrom() async throws {
        for command in ["serve", "start"] {
            let help = try await EddaBinary.run([command, "--help"])
            #expect(help.status == 0, "\(help.error)")
            // Help wraps at the terminal's width: compare words.
            let text = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(!text.contains("Defaults to $EDDA_TOKEN"), "\(help.output)")
            #expect(text.contains("--token-file <token-file> A file whose first line is the bearer token."), "\(help.output)")
            #expect(text.contains("Without it, the token is $EDDA_TOKEN when that is set and not empty; with it, $EDDA_TOKEN is not read."), "\(help.output)")
        }
    }
}
