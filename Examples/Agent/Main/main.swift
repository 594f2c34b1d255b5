// edda-example-agent: the seed's research agent (research, analyze, synthesize) as a durable
// workflow, served as MCP tools over stdin/stdout to a local AI client.
//
//   swift run edda-example-agent agent.sqlite
//
// With OPENAI_API_KEY set it asks an OpenAI-compatible API (OPENAI_BASE_URL, default
// https://api.openai.com/v1; OPENAI_MODEL, default gpt-4o-mini); otherwise a deterministic fake
// model answers (EDDA_AGENT_STEP_MS makes each call take that long, EDDA_AGENT_LOG names a file
// that gets one line per call actually made). Kill it mid-task and start it again: the client's
// `research_result` still arrives, and the calls that had finished are not made again.

import Edda
import EddaAgentExample
import EddaMCP
import EddaSQLite
import Foundation
import Logging
import MCP

// stdout is the MCP channel: logs go to stderr.
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
let path = CommandLine.arguments.dropFirst().first ?? "edda-agent.sqlite"
let environment = ProcessInfo.processInfo.environment
let agent: Workflow<String, String>
if let key = environment["OPENAI_API_KEY"] {
    agent = researchAgent(
        model: OpenAICompatibleModel(
            baseURL: environment["OPENAI_BASE_URL"] ?? "https://api.openai.com/v1", model: environment["OPENAI_MODEL"] ?? "gpt-4o-mini",
            apiKey: key
        )
    )
} else {
    agent = researchAgent(
        model: FakeModel(
            delay: .milliseconds(Int(environment["EDDA_AGENT_STEP_MS"] ?? "") ?? 0),
            log: environment["EDDA_AGENT_LOG"].map(URL.init(fileURLWithPath:))
        )
    )
}
let app = EddaApp(store: try SQLiteStore(path: path), serviceName: "research-agent")
try app.register(agent)
try await app.run { app in
    let server = try await WorkflowTools(app: app).serve(on: StdioTransport(), name: "research-agent")
    await server.waitUntilCompleted()
}
