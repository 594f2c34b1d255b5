import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// The export document (`edda.history.v1`): what it holds, and that reading it back gives the history.
@Suite("History export format", .timeLimit(.minutes(1)))
struct HistoryExportTests {
    struct Quote: Codable, Sendable, Equatable {
        var amount: Int64
        var rate: Double
        var note: String?
        var flags: [Bool]
    }

    static let quote = Activity("quote") { (ctx, order: String) -> Quote in
        Quote(amount: 9_007_199_254_740_993, rate: 0.1, note: nil, flags: [true, false])
    }
    static let flaky = Activity("flaky") { (ctx) -> String in
        if ctx.attempt < 2 { throw CancellationError() }
        return "ok"
    }
    static let decline = Activity("decline", retry: .noRetry) { (ctx) -> Int in throw TerminalError("declined") }
    static let order = Workflow("order") { (ctx, id: String) -> String in
        _ = try await quote(ctx, id)
        _ = try await ctx.patched("p")
        _ = try await flaky(ctx)
        _ = try await ctx.uuid()
        return try await "\(decline(ctx))"
    }

    @Test(arguments: Backend.allCases)
    func anExportReadsBackAsTheSameHistory(_ backend: Backend) async throws {
        try await backend.withTestApp { app in
            _ = try? await app.start(Self.order, "o-1", instanceID: "o-1").result()
            let stored = try await app.history(of: "o-1")
            let export = try #require(try await app.store.export("o-1"))
            #expect(export.status == .failed && export.workflowName == "order" && export.input.json == #"["o-1"]"#)
            #expect(export.error?.message.contains("declined") == true)

            let data = try export.jsonData()
            let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(document["format"] as? String == "edda.history.v1")
            #expect((document["input"] as? [String]) == ["o-1"], "payloads are JSON values, not strings")
            let first = try #require((document["history"] as? [[String: Any]])?.first)
            #expect(Set(first.keys) == ["sequence", "step_id", "position", "name", "kind", "payload", "error", "retry", "recorded_at"])

            let read = try HistoryExport(jsonData: data)
            #expect(read.instanceID == "o-1" && read.status == .failed && read.runNumber == 1)
            #expect(read.history.map(\.stepID) == stored.map(\.stepID))
            #expect(read.history.map(\.kind) == stored.map(\.kind))
            #expect(read.history.map(\.position) == stored.map(\.position))
            #expect(read.history.map(\.sequence) == stored.map(\.sequence))
            #expect(read.history.map(\.retry) == stored.map(\.retry))
            #expect(read.history.map(\.error) == stored.map(\.error))
            #expect(zip(read.history, stored).allSatisfy { abs($0.recordedAt.timeIntervalSince($1.recordedAt)) < 0.001 })
            let quoted = try #require(read.history.first { $0.name == "quote" }?.payload)
            #expect(try quoted.decode(Quote.self) == Quote(amount: 9_007_199_254_740_993, rate: 0.1, note: nil, flags: [true, false]))
            #expect(try read.jsonData() == data, "the document is stable: reading and writing it again gives the same bytes")
        }
    }

    @Test func aDocumentOfAnotherFormatIsRefusedWithWhatIsWrong() throws {
        let other = try #require(#"{"format": "edda.history.v9"}"#.data(using: .utf8))
        let error = try #require(throws: EngineError.self) { try HistoryExport(jsonData: other) }
        #expect(error.code == .corruptHistory && error.message.contains("edda.history.v9"))
        let garbage = Data("not json".utf8)
        let unreadable = try #require(throws: EngineError.self) { try HistoryExport(jsonData: garbage) }
        #expect(unreadable.message.contains("edda export"))
    }
}
