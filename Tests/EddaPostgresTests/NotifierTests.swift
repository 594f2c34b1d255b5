@testable import EddaPostgres
import Testing

/// The LISTEN/NOTIFY payloads: names and IDs only, each under the server's 8,000-byte limit.
@Suite("PostgreSQL notification payloads")
struct NotifierTests {
    @Test func finishedIDsRoundTripInPayloadsUnderTheLimit() throws {
        let ids = (0..<2_000).map { "order-\($0)-\"quoted\"\n" } + ["ü∑ unicode"]
        let payloads = Notifier.payloads(ready: true, outbox: true, finished: ids)
        #expect(payloads.prefix(2) == ["ready", "outbox"])
        #expect(payloads.count > 3, "2,000 IDs do not fit one notification")
        #expect(payloads.allSatisfy { $0.utf8.count < 8_000 })
        var decoded: [String] = []
        for payload in payloads.dropFirst(2) {
            let events = try #require(Notifier.events(in: payload))
            decoded += try #require(events.finished)
        }
        #expect(decoded == ids)
        #expect(Notifier.events(in: "ready")?.ready == true)
        #expect(Notifier.events(in: "something else") == nil)
    }

    @Test func anIDTooLongToNameWakesEveryWaiter() throws {
        let payloads = Notifier.payloads(ready: false, outbox: false, finished: [String(repeating: "x", count: 5_000), "short"])
        #expect(payloads.first == "finished")
        let bare = try #require(Notifier.events(in: "finished"))
        #expect(bare.finished == nil, "a bare 'finished' means: look at every waiter")
        #expect(try #require(Notifier.events(in: payloads[1])).finished == ["short"])
    }
}
