import Edda
import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `edda show` prints an instance's timeouts and deadline, and the reason once a deadline cancelled it.
@Suite("CLI: deadlines in edda show", .timeLimit(.minutes(1)))
struct CLIDeadlineTests {
    static let forever = Workflow("forever", runTimeout: .seconds(600)) { (ctx, _: String) -> Int in
        try await ctx.waitForEvent(type: "never.comes", as: Int.self).data
    }

    @Test func showPrintsTheTimeoutsAndTheReasonOfACancellationByDeadline() async throws {
        try await withTemporaryDatabase { path in
            try await withTestApp(store: try SQLiteStore(path: path)) { app in
                let handle = try await app.start(Self.forever, "x", instanceID: "late", timeout: .milliseconds(20))
                await #expect(throws: WorkflowCancelledError.self) { _ = try await handle.result() }
                _ = try await app.start(Self.forever, "y", instanceID: "waiting", timeout: .seconds(3600))
            }
            let waiting = try await EddaBinary.run(["show", "waiting", "--database", path])
            #expect(waiting.status == 0, "\(waiting.error)")
            #expect(waiting.output.contains("timeout:   workflow timeout 1 h, run timeout 10 min · deadline in 9 min 5"), "\(waiting.output)")
            let late = try await EddaBinary.run(["show", "late", "--database", path])
            #expect(late.output.contains("reason:    deadline exceeded: workflow timeout 20 ms passed at 20"), "\(late.output)")
            let json = try await EddaBinary.run(["show", "late", "--database", path, "--json"])
            let document = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
            #expect(document["workflow_timeout_ms"] as? Int == 20)
            #expect((document["cancellation_reason"] as? String)?.hasPrefix("deadline exceeded") == true)
        }
    }
}
