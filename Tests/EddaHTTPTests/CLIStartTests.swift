import Edda
import EddaHTTP
import EddaTestSupport
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `edda start`: the built CLI asks a running app's API, which has the workflow's code.
@Suite("CLI: edda start through a running app's API", .timeLimit(.minutes(1)))
struct CLIStartTests {
    static let greet = Workflow("greet", validate: { (name: String) in
        guard !name.isEmpty else { throw ValidationError(field: "name", "must not be empty") }
    }) { (_: WorkflowContext, name: String) -> String in "Hello, \(name)!" }

    @Test func startValidatesThroughTheAppAndWaitsForTheResult() async throws {
        try await withTestApp { app in
            try app.register(Self.greet)
            let server = Application(
                router: EddaHTTP(app: app, configuration: .init(bearerToken: "t0ken")).router(),
                configuration: .init(address: .hostname("127.0.0.1", port: 0))
            )
            try await server.test(.live) { client in
                let base = "http://127.0.0.1:\(try #require(client.port))"
                let token = ["EDDA_TOKEN": "t0ken", "EDDA_SERVER": base]

                let started = try await EddaBinary.run(["start", "greet", "--input", "[\"Ada\"]", "--instance-id", "g-1", "--wait"], environment: token)
                #expect(started.status == 0, "\(started.error)")
                #expect(started.output.contains("started g-1") && started.output.contains("completed: \"Hello, Ada!\""), "\(started.output)")
                #expect(try await app.instance("g-1")?.status == .completed)

                // An ID with '/', '@', a space and non-ASCII characters: the wait finds it too.
                let odd = "cli/ü @1"
                let waited = try await EddaBinary.run(["start", "greet", "--input", "[\"Bo\"]", "--instance-id", odd, "--wait"], environment: token)
                #expect(waited.status == 0, "\(waited.error)")
                #expect(waited.output.contains("completed: \"Hello, Bo!\""), "\(waited.output)")

                let invalid = try await EddaBinary.run(["start", "greet", "--input", "[\"\"]"], environment: token)
                #expect(invalid.status != 0)
                #expect(invalid.error.contains("name must not be empty") && invalid.error.contains("HTTP 400"), "\(invalid.error)")
                let unknown = try await EddaBinary.run(["start", "nope"], environment: token)
                #expect(unknown.error.contains("No workflow named 'nope'"), "\(unknown.error)")
                let notArray = try await EddaBinary.run(["start", "greet", "--input", "\"Ada\""], environment: token)
                #expect(notArray.status != 0 && notArray.error.contains("JSON array"), "\(notArray.error)")
                let anonymous = try await EddaBinary.run(["start", "greet", "--input", "[\"Bo\"]", "--server", base], environment: ["EDDA_TOKEN": ""])
                #expect(anonymous.status != 0 && anonymous.error.contains("HTTP 401"), "\(anonymous.error)")
                let created = try await app.instances(matching: InstanceQuery()).instances.count
                #expect(created == 2, "only the valid, authorised starts created instances")

                // On a queue the app registers, with a priority and a deduplication ID.
                app.register(Queue("greetings", concurrency: 2))
                let queued = try await EddaBinary.run(
                    ["start", "greet", "--input", "[\"Cy\"]", "--instance-id", "q-1", "--queue", "greetings", "--priority", "4",
                     "--deduplication-id", "cy", "--wait"],
                    environment: token
                )
                #expect(queued.status == 0 && queued.output.contains("completed: \"Hello, Cy!\""), "\(queued.output) \(queued.error)")
                let onQueue = try #require(try await app.instance("q-1"))
                #expect(onQueue.queue == "greetings" && onQueue.priority == 4)
                let unknownQueue = try await EddaBinary.run(["start", "greet", "--input", "[\"Cy\"]", "--queue", "nope"], environment: token)
                #expect(unknownQueue.status != 0 && unknownQueue.error.contains("No queue named 'nope'"), "\(unknownQueue.error)")
                let stray = try await EddaBinary.run(["start", "greet", "--input", "[\"Cy\"]", "--priority", "1"], environment: token)
                #expect(stray.status != 0 && stray.error.contains("add --queue"), "\(stray.error)")

                // Timeouts: sent to the app, which stores them with the instance.
                let timed = try await EddaBinary.run(
                    ["start", "greet", "--input", "[\"Di\"]", "--instance-id", "t-1", "--timeout", "30s", "--run-timeout", "500ms"],
                    environment: token
                )
                #expect(timed.status == 0, "\(timed.error)")
                let stored = try #require(try await app.instance("t-1"))
                #expect(stored.workflowTimeout == .seconds(30) && stored.runTimeout == .milliseconds(500))
                for bad in ["30", "0s", "5 minutes", "2x"] {
                    let refused = try await EddaBinary.run(["start", "greet", "--input", "[\"Di\"]", "--timeout", bad], environment: token)
                    #expect(
                        refused.status != 0 && refused.error.contains("--timeout takes a whole number above zero and a unit (ms, s, m, h or d)"),
                        "\(bad): \(refused.error)"
                    )
                }
            }
        }
        let unreachable = try await EddaBinary.run(["start", "greet", "--server", "http://127.0.0.1:1"])
        #expect(unreachable.status != 0 && unreachable.error.contains("Cannot reach an Edda app at http://127.0.0.1:1"), "\(unreachable.error)")
    }
}
