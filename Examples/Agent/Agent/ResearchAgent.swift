// The seed's research agent: research, analyze, synthesize — each an LLM call, each an activity, so a
// crash in the second does not repeat the first. The model sits behind `LanguageModel`: a
// deterministic fake for tests and demos, or any OpenAI-compatible chat-completions API.

public import Edda
public import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1

/// What the agent needs from a model: one completion per prompt.
public protocol LanguageModel: Sendable {
    func complete(_ prompt: String) async throws -> String
}

/// Model calls fail for a while (rate limits, overload): retried with backoff. A refused request
/// (``TerminalError``) is not.
public let modelRetry = RetryPolicy(maxAttempts: 6, initialInterval: .seconds(2), backoffCoefficient: 2, maxInterval: .seconds(60))

/// The agent as a workflow named `research` over `model`, its calls retried by `retry`.
public func researchAgent(model: some LanguageModel, retry: RetryPolicy = modelRetry) -> Workflow<String, String> {
    let research = Activity("research", retry: retry, timeout: .seconds(120)) { (ctx, topic: String) -> String in
        try await model.complete("research: \(topic)")
    }
    let analyze = Activity("analyze", retry: retry, timeout: .seconds(120)) { (ctx, findings: String) -> String in
        try await model.complete("analyze: \(findings)")
    }
    let synthesize = Activity("synthesize", retry: retry, timeout: .seconds(120)) { (ctx, analysis: String) -> String in
        try await model.complete("synthesize: \(analysis)")
    }
    return Workflow("research") { (ctx, topic: String) -> String in
        let findings = try await research(ctx, topic)
        let analysis = try await analyze(ctx, findings)
        return try await synthesize(ctx, analysis)
    }
}

/// A deterministic stand-in: answers `[<prompt>]` after `delay`, and appends each prompt's start to
/// `log` (one line per call actually made), for tests to count.
public struct FakeModel: LanguageModel {
    public let delay: Duration
    public let log: URL?

    public init(delay: Duration = .zero, log: URL? = nil) {
        self.delay = delay
        self.log = log
    }

    public func complete(_ prompt: String) async throws -> String {
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

/// Any OpenAI-compatible chat-completions API (OpenAI, a local server, a gateway), through
/// AsyncHTTPClient: `POST <baseURL>/chat/completions`.
public struct OpenAICompatibleModel: LanguageModel {
    /// A status the API may answer differently later (429, 5xx): the activity's retry policy retries it.
    public struct Unavailable: Error, CustomStringConvertible {
        public var status: Int
        public var description: String { "the model API answered \(status); retried by the activity's policy" }
    }

    public let baseURL: String
    public let model: String
    let apiKey: String?
    let client: HTTPClient

    /// - Parameters:
    ///   - baseURL: Such as `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    ///   - client: Its lifetime is the caller's (`HTTPClient.shared` by default).
    public init(baseURL: String, model: String, apiKey: String? = nil, client: HTTPClient = .shared) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.apiKey = apiKey
        self.client = client
    }

    public func complete(_ prompt: String) async throws -> String {
        var request = HTTPClientRequest(url: "\(baseURL)/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let body: [String: Any] = ["model": model, "messages": [["role": "user", "content": prompt]]]
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response = try await client.execute(request, timeout: .seconds(120))
        let data = Data(try await response.body.collect(upTo: 4 << 20).readableBytesView)
        let status = Int(response.status.code)
        if status == 429 || status >= 500 { throw Unavailable(status: status) }
        guard status == 200 else {
            // Asking again will not help: fail the step for good, with what the API said.
            throw TerminalError("The model API refused the request (\(status)): \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let choices = document["choices"] as? [[String: Any]], let message = choices.first?["message"] as? [String: Any],
            let content = message["content"] as? String
        else {
            throw TerminalError("The model API's answer has no choices[0].message.content: \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
        return content
    }
}
