import Edda
import EddaMCP
import EddaTesting
import Foundation
import MCP
import Testing

@Suite("MCP: workflows as tools", .timeLimit(.minutes(1)))
struct WorkflowToolsTests {
    static let search = Activity("search") { (ctx, topic: String) -> String in "sources on \(topic)" }
    static let summarize = Activity("summarize") { (ctx, sources: String) -> String in "summary of \(sources)" }
    static let research = Workflow("research") { (ctx, topic: String) -> String in
        try await summarize(ctx, try await search(ctx, topic))
    }
    static let approval = Workflow("approval") { (ctx, request: String) -> String in
        let decision = try await ctx.waitForEvent(type: "approved", as: String.self)
        return "\(request): \(decision.data)"
    }

    /// A client connected to a server that serves the tools of `app`, through the SDK's in-memory transport.
    func withClient(_ app: EddaApp, _ body: (Client) async throws -> Void) async throws {
        let (clientSide, serverSide) = await InMemoryTransport.createConnectedPair()
        let server = try await WorkflowTools(app: app, resultWait: .milliseconds(300)).serve(on: serverSide, name: "edda-test")
        let client = Client(name: "edda-test-client", version: "1.0.0")
        _ = try await client.connect(transport: clientSide)
        try await body(client)
        await client.disconnect()
        await server.stop()
    }

    /// A call's text as a JSON object.
    func document(_ answer: (content: [Tool.Content], isError: Bool?)) throws -> [String: Any] {
        guard case .text(let text, _, _)? = answer.content.first else { throw CancellationError() }
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    func text(_ answer: (content: [Tool.Content], isError: Bool?)) -> String {
        guard case .text(let text, _, _)? = answer.content.first else { return "" }
        return text
    }

    @Test func aClientStartsFollowsAndFetchesAResultAndOneKeyStartsOneInstance() async throws {
        try await withTestApp { app in
            try app.register(Self.research)
            try await withClient(app) { client in
                let names = Set(try await client.listTools().tools.map(\.name))
                #expect(names.isSuperset(of: ["research", "research_status", "research_result", "research_cancel"]))
                let listed = try #require(try await client.listTools().tools.first { $0.name == "research" })
                #expect("\(listed.inputSchema)".contains("prefixItems"), "the schema is the workflow's arguments")

                let started = try document(try await client.callTool(name: "research", arguments: ["arguments": ["swift"], "idempotency_key": "k-1"]))
                let id = try #require(started["instance_id"] as? String)
                let again = try document(try await client.callTool(name: "research", arguments: ["arguments": ["swift"], "idempotency_key": "k-1"]))
                #expect(again["instance_id"] as? String == id, "the same key returns the same instance")
                #expect(try await app.instances().count == 1)

                let result = try await client.callTool(name: "research_result", arguments: ["instance_id": .string(id)])
                #expect(result.isError == false)
                #expect(try document(result)["output"] as? String == "summary of sources on swift")
                let status = try document(try await client.callTool(name: "research_status", arguments: ["instance_id": .string(id)]))
                #expect(status["status"] as? String == "completed" && status["steps_recorded"] as? Int == 2 && status["last_step"] as? String == "summarize:1")

                let wrong = try await client.callTool(name: "research", arguments: ["arguments": [42]])
                #expect(wrong.isError == true)
                #expect(text(wrong).contains("invalid"), "\(text(wrong))")
                let unknown = try await client.callTool(name: "nope", arguments: [:])
                #expect(unknown.isError == true && text(unknown).contains("research_status"))
                let missing = try await client.callTool(name: "research_status", arguments: [:])
                #expect(missing.isError == true && text(missing).contains("instance_id"))
            }
        }
    }

    @Test func aResultStillRunningSaysSoAndCancelStopsIt() async throws {
        try await withTestApp { app in
            try app.register(Self.approval)
            try await withClient(app) { client in
                let id = try #require(try document(try await client.callTool(name: "approval", arguments: ["arguments": ["refund"]]))["instance_id"] as? String)
                let waiting = try await client.callTool(name: "approval_result", arguments: ["instance_id": .string(id)])
                #expect(waiting.isError == false)
                #expect(try document(waiting)["note"] as? String == "still running: call this tool again later")
                let cancelled = try document(try await client.callTool(name: "approval_cancel", arguments: ["instance_id": .string(id)]))
                #expect(cancelled["cancel_requested"] as? Bool == true)
                let ended = try await client.callTool(name: "approval_result", arguments: ["instance_id": .string(id)])
                #expect(ended.isError == true && text(ended).contains("cancelled"), "\(text(ended))")
                #expect(try await app.instance(id)?.status == .cancelled)
            }
        }
    }
}
