// edda-example-agent: the seed's research agent (research, analyze, synthesize) as a durable
// workflow, served as MCP tools over stdin/stdout to a local AI client.
//
//   swift run edda-example-agent agent.sqlite
//
// Its "LLM calls" are activities behind `LanguageModel`; this example uses a deterministic fake
// model (set EDDA_AGENT_STEP_MS to make each call take that long, EDDA_AGENT_LOG to a file that
// gets one line per call actually made). Kill it mid-task and start it again: the client's
// `research_result` still arrives, and the calls that had finished are not made again.

import Edda
import EddaMCP
import EddaSQLite
import Foundation
import Logging
import MCP

/// What the agent needs from a model: one completion per prompt.
protocol LanguageModel: Sendable {
    func complete(_ prompt: String) async throws -> String
}

/// A deterministic stand-in: answers from the prompt, after an optional delay, and logs each call.
struct FakeModel: LanguageModel {
    let delay: Duration
    let log: URL?

    func complete(_ prompt: String) async throws -> String {
        try await Task.sleep(for: delay)
        if let log {
            let line = Data("\(prompt.prefix(24))\n".utf8)
            if let handle = try? FileHandle(forWritingTo: log) {
                _ = try? handle.seekToEnd()
                try? handle.write(contentsOf: line)
                try? handle.close()
            } else {
                try? line.write(to: log)
            }
        }
        return "[\(prompt.prefix(48))]"
    }
}

/// Rate limits and timeouts of a real model API are retried; a bad request is not.
let modelRetry = RetryPolicy(maxAttempts: 5, initialInterval: .seconds(2), backoffCoefficient: 2, maxInterval: .seconds(30))

func researchAgent(model: some LanguageModel) -> Workflow<String, String> {
    let research = Activity("research", retry: modelRetry) { (ctx, topic: String) -> String in
        try await model.complete("research: \(topic)")
    }
    let analyze = Activity("analyze", retry: modelRetry) { (ctx, findings: String) -> String in
        try await model.complete("analyze: \(findings)")
    }
    let synthesize = Activity("synthesize", retry: modelRetry) { (ctx, analysis: String) -> String in
        try await model.complete("synthesize: \(analysis)")
    }
    return Workflow("research") { (ctx, topic: String) -> String in
        let findings = try await research(ctx, topic)
        let analysis = try await analyze(ctx, findings)
        return try await synthesize(ctx, analysis)
    }
}

// stdout is the MCP channel: logs go to stderr.
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .warning
    return handler
}
let arguments = CommandLine.arguments.dropFirst()
let path = arguments.first ?? "edda-agent.sqlite"
let environment = ProcessInfo.processInfo.environment
let model = FakeModel(
    delay: .milliseconds(Int(environment["EDDA_AGENT_STEP_MS"] ?? "") ?? 0),
    log: environment["EDDA_AGENT_LOG"].map(URL.init(fileURLWithPath:))
)
let app = EddaApp(store: try SQLiteStore(path: path), serviceName: "research-agent")
try app.register(researchAgent(model: model))
try await app.run { app in
    let server = try await WorkflowTools(app: app).serve(on: StdioTransport(), name: "research-agent")
    await server.waitUntilCompleted()
}
