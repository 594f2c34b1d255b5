import Edda
import EddaAgentExample
import EddaTestSupport
import EddaTesting
import Foundation
import Hummingbird
import Logging
import Synchronization
import Testing

/// The example agent's OpenAI-compatible client against a local stand-in API: rate limits are
/// retried by the activity's policy, a refused request fails the step at once.
@Suite("MCP example: the OpenAI-compatible model client", .timeLimit(.minutes(1)))
struct OpenAICompatibleModelTests {
    /// Serves `POST /v1/chat/completions` on 127.0.0.1 with `answer(prompt, call number)` → (status, content).
    func withFakeAPI<T: Sendable>(
        _ answer: @escaping @Sendable (String, Int) -> (Int, String), _ body: @escaping @Sendable (String) async throws -> T
    ) async throws -> T {
        let calls = Mutex(0)
        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let data = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let document = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            let prompt = ((document?["messages"] as? [[String: Any]])?.first?["content"] as? String) ?? ""
            let number = calls.withLock { $0 += 1; return $0 }
            let (status, content) = answer(prompt, number)
            let reply = try JSONSerialization.data(withJSONObject: ["choices": [["message": ["role": "assistant", "content": content]]]])
            return Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(bytes: reply)))
        }
        return try await withLocalServer(router) { port in try await body("http://127.0.0.1:\(port)/v1") }
    }

    static let quick = RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(10), maxDuration: nil)

    @Test func aRateLimitIsRetriedAndTheAgentFinishes() async throws {
        let prompts = Mutex<[String]>([])
        let report = try await withFakeAPI({ prompt, number in
            prompts.withLock { $0.append(prompt) }
            return number == 1 ? (429, "slow down") : (200, "<\(prompt.prefix(12))>")
        }) { base in
            try await withTestApp { app in
                let agent = researchAgent(model: OpenAICompatibleModel(baseURL: base, model: "test-model", apiKey: "k"), retry: Self.quick)
                return try await app.start(agent, "swift").result()
            }
        }
        #expect(report == "<synthesize: >")
        #expect(prompts.withLock { $0 }.map { String($0.prefix(8)) } == ["research", "research", "analyze:", "synthesi"], "one retry after the 429")
    }

    @Test func aRefusedRequestFailsTheStepWithoutRetrying() async throws {
        let calls = Mutex(0)
        await #expect(throws: WorkflowFailedError.self) {
            try await withFakeAPI({ _, _ in
                calls.withLock { $0 += 1 }
                return (400, "bad request")
            }) { base in
                try await withTestApp { app in
                    let agent = researchAgent(model: OpenAICompatibleModel(baseURL: base, model: "test-model"), retry: Self.quick)
                    return try await app.start(agent, "swift").result()
                }
            }
        }
        #expect(calls.withLock { $0 } == 1, "a 400 is not retried")
    }
}
