@_spi(EddaStores) public import Edda
import Foundation
import Testing

/// Schedules: inserted once, read back whole, written by compare-and-set on their revision.
extension StoreConformance {
    static func schedules(_ store: any Store) async throws {
        let tick = Date(timeIntervalSince1970: 1_700_000_040)
        let record = ScheduleRecord(
            name: "nightly", workflowName: "w", expression: "0 2 * * *", timeZone: "Europe/Paris", input: JSONPayload(json: #"[{"n":1}]"#),
            overlap: .bufferAll, catchUpWindow: .milliseconds(90_500), queue: "reports", priority: -3, nextTick: tick,
            updatedAt: Date(timeIntervalSince1970: 1_700_000_000)
        )
        #expect(try await store.insertSchedule(record))
        var other = record
        other.workflowName = "other"
        #expect(try await !store.insertSchedule(other), "a second insert of the name changes nothing")
        let stored = try #require(try await store.schedule(named: "nightly"))
        #expect(stored == record, "every field reads back as written, revision 1")
        #expect(try await store.schedule(named: "missing") == nil)

        // Two writers read revision 1: the first write wins, the second changes nothing.
        var first = stored
        first.paused = true
        first.lastTick = tick
        first.lastInstanceID = "sched:nightly:x"
        first.bufferedTicks = [tick, tick.addingTimeInterval(60)]
        first.requestedTicks = [tick.addingTimeInterval(-3600)]
        first.nextTick = nil
        first.input = nil
        first.queue = "bulk"
        first.priority = 7
        var second = stored
        second.overlap = .allowAll
        #expect(try await store.updateSchedule(first))
        #expect(try await !store.updateSchedule(second), "an update from a stale revision is refused")
        var expected = first
        expected.revision = 2
        #expect(try await store.schedule(named: "nightly") == expected)
        var onNoQueue = expected
        onNoQueue.queue = nil
        onNoQueue.priority = 0
        #expect(try await store.updateSchedule(onNoQueue))
        #expect(try await store.schedule(named: "nightly")?.queue == nil, "the queue is cleared")

        let code = ScheduleRecord(
            name: "a-first", workflowName: "w", expression: "@every 60s", timeZone: "GMT", input: nil, overlap: .skip, catchUpWindow: .zero,
            nextTick: tick, updatedAt: tick
        )
        #expect(try await store.insertSchedule(code))
        #expect(try await store.schedules().map(\.name) == ["a-first", "nightly"], "listed by name")
        #expect(try await store.deleteSchedule(named: "nightly"))
        #expect(try await !store.deleteSchedule(named: "nightly"))
        #expect(try await store.schedules().map(\.name) == ["a-first"])
    }
}
