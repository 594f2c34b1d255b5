import Edda
import EddaHTTP
import EddaSQLite
import EddaTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The instance page's history a page at a time: the latest records first, then earlier and later
/// pages by a record's sequence number, as the list pages by cursor.
@Suite("HTTP: the viewer's history pages", .timeLimit(.minutes(1)))
struct HistoryPagingTests {
    /// Row sequence numbers of the history table on a page.
    static func sequences(_ html: String) -> [Int64] {
        let table = html.components(separatedBy: "<table id=\"history\">").last ?? ""
        return table.components(separatedBy: "<tr").dropFirst().compactMap { row in
            // A row's first cell (`<tr><td>` or `<tr class="failed"><td>`); the header has none.
            guard let cell = row.range(of: "<td>"), !row[..<cell.lowerBound].contains("<") else { return nil }
            return Int64(row[cell.upperBound...].prefix { $0.isNumber })
        }
    }

    @Test func theLatestRecordsComeFirstWithLinksToEarlierAndLaterPages() async throws {
        let store = try SQLiteStore.inMemory()
        let history = (1...450).map { index in
            HistoryEvent(
                instanceID: "long", stepID: "step:\(index)", position: index, name: "step", kind: .activityCompleted,
                payload: JSONPayload(json: "{\"n\":\(index)}")
            )
        }
        try await store.seedInstance("long", workflowName: "long_one", history: history)
        let sequences = try await store.history(of: "long").map(\.sequence)
        try await withTestApp(store: store) { app in
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                func page(_ uri: String) async throws -> String {
                    let response = try await client.execute(uri: uri, method: .get)
                    #expect(response.status == .ok, "\(uri)")
                    return String(buffer: response.body)
                }
                let latest = try await page("/instances/long")
                #expect(Self.sequences(latest) == Array(sequences.suffix(200)), "the latest 200, in append order")
                #expect(latest.contains("records #\(sequences[250])–#\(sequences[449]), the latest"))
                #expect(latest.contains("<a href=\"/instances/long?before=\(sequences[250])\" rel=\"prev\">← Earlier records</a>"))
                #expect(!latest.contains("Later records"))

                let middle = try await page("/instances/long?before=\(sequences[250])")
                #expect(Self.sequences(middle) == Array(sequences[50..<250]))
                #expect(middle.contains("<p class=\"paging\"><a href=\"/instances/long?before=\(sequences[50])\" rel=\"prev\">← Earlier records</a> · "
                    + "<a href=\"/instances/long?after=\(sequences[249])\" rel=\"next\">Later records →</a> · <a href=\"/instances/long\">Latest records ⇥</a></p>"))

                let first = try await page("/instances/long?before=\(sequences[50])")
                #expect(Self.sequences(first) == Array(sequences[0..<50]))
                #expect(!first.contains("Earlier records") && first.contains("Later records →"))

                let forward = try await page("/instances/long?after=\(sequences[249])")
                #expect(Self.sequences(forward) == Array(sequences[250..<450]))
                #expect(forward.contains("← Earlier records") && !forward.contains("Later records →"))

                // Numbers at the ends of the range, or none at all: a page, never a crash.
                #expect(Self.sequences(try await page("/instances/long?after=\(Int64.max)")).isEmpty)
                #expect(Self.sequences(try await page("/instances/long?before=\(Int64.min)")).isEmpty)
                #expect(Self.sequences(try await page("/instances/long?before=soon")) == Array(sequences.suffix(200)))
            }
        }
    }

    @Test func failedOnlyKeepsItsFilterAcrossPages() async throws {
        let store = try SQLiteStore.inMemory()
        let history = (1...260).map { index in
            HistoryEvent(
                instanceID: "f", stepID: "step:\(index)", position: index, name: "step", kind: index % 2 == 0 ? .attemptFailed : .activityCompleted,
                error: index % 2 == 0 ? ErrorRecord(type: "E", message: "attempt \(index)") : nil
            )
        }
        try await store.seedInstance("f", workflowName: "flaky", history: history)
        let failed = try await store.history(of: "f").filter { $0.kind == .attemptFailed }.map(\.sequence)
        try await withTestApp(store: store) { app in
            let server = Application(router: EddaHTTP(app: app).router())
            try await server.test(.router) { client in
                let html = String(buffer: try await client.execute(uri: "/instances/f?failed=true", method: .get).body)
                #expect(Self.sequences(html) == Array(failed.suffix(130)), "all 130 failures fit on the latest page")
                #expect(!html.contains("Earlier records"))
                let earlier = String(buffer: try await client.execute(uri: "/instances/f?failed=true&before=\(failed[100])", method: .get).body)
                #expect(Self.sequences(earlier) == Array(failed[0..<100]))
                #expect(earlier.contains("<a href=\"/instances/f?after=\(failed[99])&amp;failed=true\" rel=\"next\">Later records →</a>"))
                #expect(earlier.contains("<a href=\"/instances/f?failed=true\">Latest records ⇥</a>"))
            }
        }
    }
}
