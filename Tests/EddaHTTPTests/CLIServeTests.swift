import Edda
import EddaSQLite
import EddaTestSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// `edda serve`: the built CLI serving a database, with `--allowed-host`, and its warning when it
/// binds beyond loopback without a token.
@Suite("CLI: edda serve's host names and warning", .timeLimit(.minutes(1)))
struct CLIServeTests {
    @Test func serveAnswersItsAllowedNamesOnlyAndWarnsWhenExposed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = directory.appendingPathComponent("serve.sqlite").path
        _ = try SQLiteStore(path: database)
        let errors = directory.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)

        let port = Int.random(in: 20_000..<60_000)
        let process = Process()
        process.executableURL = try EddaBinary.executable()
        process.arguments = ["serve", "--database", database, "--host", "0.0.0.0", "--port", String(port), "--allowed-host", "edda.lan"]
        process.environment = ProcessInfo.processInfo.environment.merging(["EDDA_TOKEN": ""]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        defer { process.terminate() }

        /// The status of `GET /api/instances` with `Host: <host>`, once the server listens.
        func status(host: String) async throws -> HTTPResponse.Status {
            for _ in 0..<400 {
                do {
                    return try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                        try await client.execute(TestClient.Request("/api/instances", method: .get, authority: host)).head.status
                    }
                } catch {
                    try await Task.sleep(for: .milliseconds(25))  // not listening yet
                }
            }
            throw CancellationError()
        }
        #expect(try await status(host: "edda.lan:\(port)") == .ok, "a name given with --allowed-host")
        #expect(try await status(host: "localhost:\(port)") == .ok)
        #expect(try await status(host: "evil.example:\(port)") == .misdirectedRequest)
        let logged = try String(contentsOf: errors, encoding: .utf8)
        #expect(logged.contains("without a bearer token"), "\(logged)")
    }
}
