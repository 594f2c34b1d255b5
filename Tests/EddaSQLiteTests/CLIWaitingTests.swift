@_spi(EddaStores) import Edda
@_spi(EddaStores) import EddaSQLite
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `edda show` and `edda list` say what a waiting instance waits for, as text and as JSON, and
/// `--status waiting` lists only those.
@Suite("CLI: what instances wait for, paging back", .timeLimit(.minutes(1)))
struct CLIWaitingTests {
    func objects(_ text: String) -> [[String: Any]] {
        text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// One instance waiting for an event (5 min timeout), one ready: closed before the CLI opens the file.
    func seed(_ path: String) async throws {
        let store = try SQLiteStore(path: path)
        let now = Date()
        let lease = try await store.createLeasedInstance("pay-1", workflowName: "await_payment")
        let wait = MessageWait(
            instanceID: "pay-1", stepID: "edda.event:1", position: 1, name: "edda.event", channel: "payment.completed", kind: .event,
            afterSequence: nil, deadline: now.addingTimeInterval(300)
        )
        guard case .waiting(let deadline) = try await store.receive(wait, lease: lease, now: now) else {
            Issue.record("nothing to receive yet")
            return
        }
        try await store.release(lease, readyAt: deadline)
        try await store.seedInstance("ready-1", workflowName: "await_payment")
    }

    @Test func showAndListSayWhatAnInstanceWaitsFor() async throws {
        try await withTemporaryDatabase { path in
            try await seed(path)
            let show = try await EddaBinary.run(["show", "pay-1", "--database", path])
            #expect(show.status == 0, "\(show.error)")
            #expect(show.output.contains("status:    waiting"), "\(show.output)")
            #expect(show.output.contains("waiting:   Waiting for event payment.completed · timeout in 4 min"), "\(show.output)")
            #expect(show.output.contains("(of 5 min)"))
            #expect(show.output.contains("deadline:  "), "the deadline as local time")

            let json = try #require(objects(try await EddaBinary.run(["show", "pay-1", "--database", path, "--json"]).output).first)
            #expect(json["status"] as? String == "waiting")
            let waitingFor = try #require(json["waiting_for"] as? [String: Any])
            #expect(waitingFor["kind"] as? String == "event" && waitingFor["awaited"] as? String == "payment.completed")
            #expect(waitingFor["timeout_seconds"] as? Double == 300)

            let waiting = objects(try await EddaBinary.run(["list", "--database", path, "--status", "waiting", "--json"]).output)
            #expect(waiting.compactMap { $0["instance_id"] as? String } == ["pay-1"])
            let running = objects(try await EddaBinary.run(["list", "--database", path, "--status", "running", "--json"]).output)
            #expect(Set(running.compactMap { $0["instance_id"] as? String }) == ["pay-1", "ready-1"], "running includes waiting")
            #expect(running.first { $0["instance_id"] as? String == "ready-1" }?["waiting_for"] is NSNull)

            let table = try await EddaBinary.run(["list", "--database", path])
            #expect(table.output.contains("WAITING FOR"))
            let row = try #require(table.output.split(separator: "\n").first { $0.hasPrefix("pay-1") })
            #expect(row.contains("waiting") && row.contains("event payment.completed · timeout in 4 min"), "\(row)")
        }
    }

    @Test func listPagesBackWithTheCursorItPrints() async throws {
        try await withTemporaryDatabase { path in
            do {
                let store = try SQLiteStore(path: path)
                for index in 0..<7 {
                    _ = try await store.createInstance(
                        NewInstance(instanceID: "i-\(index)", workflowName: "batch", serviceName: "test", input: JSONPayload(json: "[]")), leasedTo: nil
                    )
                }
            }
            func ids(_ output: String) -> [String] { output.split(separator: "\n").filter { $0.hasPrefix("i-") }.map { String($0.split(separator: " ")[0]) } }
            func cursor(_ output: String, after label: String) -> String? {
                output.split(separator: "\n").first { $0.hasPrefix(label) }?.split(separator: "'").dropFirst().first.map(String.init)
            }
            let first = try await EddaBinary.run(["list", "--database", path, "--limit", "3"])
            #expect(ids(first.output).count == 3 && !first.output.contains("previous page"), "\(first.output)")
            let next = try #require(cursor(first.output, after: "next page:"))
            let second = try await EddaBinary.run(["list", "--database", path, "--limit", "3", "--after", next])
            let previous = try #require(cursor(second.output, after: "previous page:"), "\(second.output)")
            let back = try await EddaBinary.run(["list", "--database", path, "--limit", "3", "--before", previous])
            #expect(back.status == 0, "\(back.error)")
            #expect(ids(back.output) == ids(first.output), "the first page again, newest first: \(back.output)")
            #expect(!back.output.contains("previous page"), "nothing before the first page")
            let json = try await EddaBinary.run(["list", "--database", path, "--json", "--before", previous])
            #expect(objects(json.output).compactMap { $0["instance_id"] as? String } == ids(first.output))
            let both = try await EddaBinary.run(["list", "--database", path, "--after", next, "--before", previous])
            #expect(both.status != 0 && both.error.contains("not both"), "\(both.error)")
        }
    }
}
