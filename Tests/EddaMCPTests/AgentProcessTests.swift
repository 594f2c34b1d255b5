import EddaTestSupport
import Foundation
import MCP
import SystemPackage
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The example agent as a real process a client talks to over its stdin and stdout, SIGKILLed
/// mid-task and started again on the same database.
@Suite("MCP: the research agent over stdio survives a SIGKILL", .timeLimit(.minutes(2)))
struct AgentProcessTests {
    /// One run of `edda-example-agent` on `database`, and an MCP client on its pipes.
    final class Agent: Sendable {
        let process: Process
        let client: Client

        init(database: String, log: String, stepMilliseconds: Int) async throws {
            let process = Process()
            process.executableURL = try EddaBinary.executable(named: "edda-example-agent")
            process.arguments = [database]
            var environment = ProcessInfo.processInfo.environment
            environment["EDDA_AGENT_LOG"] = log
            environment["EDDA_AGENT_STEP_MS"] = "\(stepMilliseconds)"
            process.environment = environment
            let (toAgent, fromAgent) = (Pipe(), Pipe())
            process.standardInput = toAgent
            process.standardOutput = fromAgent
            process.standardError = FileHandle.standardError
            try process.run()
            let transport = StdioTransport(
                input: FileDescriptor(rawValue: fromAgent.fileHandleForReading.fileDescriptor),
                output: FileDescriptor(rawValue: toAgent.fileHandleForWriting.fileDescriptor)
            )
            let client = Client(name: "agent-test", version: "1.0.0")
            _ = try await client.connect(transport: transport)
            self.process = process
            self.client = client
        }

        func call(_ tool: String, _ arguments: [String: Value]) async throws -> [String: Any] {
            let answer = try await client.callTool(name: tool, arguments: arguments)
            guard case .text(let text, _, _)? = answer.content.first,
                let document = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            else { throw CancellationError() }
            return document
        }

        func kill() async {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            await client.disconnect()
        }
    }

    @Test func aResultArrivesAfterTheServerIsKilledAndFinishedCallsAreNotMadeAgain() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-agent-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (database, log) = (directory.appendingPathComponent("agent.sqlite").path, directory.appendingPathComponent("calls.log").path)

        let first = try await Agent(database: database, log: log, stepMilliseconds: 300)
        let started = try await first.call("research", ["arguments": ["durable agents"], "idempotency_key": "task-1"])
        let id = try #require(started["instance_id"] as? String)
        // Killed once its first call is recorded, while the second is under way.
        var recorded = 0
        for _ in 0..<400 where recorded < 1 {
            try await Task.sleep(for: .milliseconds(25))
            recorded = try await first.call("research_status", ["instance_id": .string(id)])["steps_recorded"] as? Int ?? 0
        }
        #expect(recorded == 1)
        await first.kill()

        let second = try await Agent(database: database, log: log, stepMilliseconds: 300)
        let again = try await second.call("research", ["arguments": ["durable agents"], "idempotency_key": "task-1"])
        #expect(again["instance_id"] as? String == id, "the same key after the restart: the same instance")
        let result = try await second.call("research_result", ["instance_id": .string(id)])
        #expect(result["status"] as? String == "completed", "\(result)")
        #expect((result["output"] as? String)?.hasPrefix("[synthesize: [analyze: [research: durable agents]") == true, "\(result)")
        await second.kill()

        let calls = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(calls.filter { $0.hasPrefix("research:") }.count == 1, "the finished call was not made again: \(calls)")
        #expect(calls.filter { $0.hasPrefix("synthesize:") }.count == 1, "\(calls)")
        #expect((1...2).contains(calls.filter { $0.hasPrefix("analyze:") }.count), "the call under way at the kill may run again: \(calls)")
    }
}
