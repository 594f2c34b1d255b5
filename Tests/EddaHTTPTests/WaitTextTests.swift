import Edda
import EddaHTTP
import Foundation
import Testing

/// The words for what an instance waits for, as the viewer and `edda show` print them.
@Suite("HTTP: what a wait says")
struct WaitTextTests {
    let now = Date(timeIntervalSince1970: 4_000_000_000)

    @Test func durationsShowTheirTwoLargestUnits() {
        #expect(WaitText.duration(.milliseconds(250)) == "250 ms")
        #expect(WaitText.duration(.seconds(12)) == "12 s")
        #expect(WaitText.duration(.seconds(252)) == "4 min 12 s")
        #expect(WaitText.duration(.seconds(7_200)) == "2 h", "not 2 h 0 min")
        #expect(WaitText.duration(.seconds(7_500)) == "2 h 5 min")
        #expect(WaitText.duration(.seconds(3 * 86_400 + 4 * 3600 + 59)) == "3 d 4 h")
        #expect(WaitText.relative(now.addingTimeInterval(252.4), now: now) == "in 4 min 12 s")
        #expect(WaitText.relative(now.addingTimeInterval(-3), now: now) == "3 s ago")
        #expect(WaitText.relative(now.addingTimeInterval(0.2), now: now) == "now")
    }

    @Test func eachKindOfWaitReadsAsASentence() {
        let event = InstanceWait(
            kind: .event, awaited: "payment.completed", deadline: now.addingTimeInterval(252), since: now.addingTimeInterval(-48), timeout: .seconds(300)
        )
        #expect(WaitText.summary(event, now: now) == "Waiting for event payment.completed · timeout in 4 min 12 s (of 5 min)")
        #expect(WaitText.summary(event, now: now) { "<code>\($0)</code>" }.hasPrefix("Waiting for event <code>payment.completed</code>"))
        #expect(WaitText.summary(event, now: now.addingTimeInterval(300)) == "Waiting for event payment.completed · timed out 48 s ago (of 5 min)")
        #expect(WaitText.summary(InstanceWait(kind: .channel, awaited: "jobs"), now: now) == "Waiting for a message on channel jobs · no timeout")
        #expect(WaitText.summary(InstanceWait(kind: .child, awaited: "o-1/edda.child:1"), now: now) == "Waiting for child o-1/edda.child:1 to finish · no timeout")
        let timer = InstanceWait(kind: .timer, stepID: "edda.sleep:1", deadline: now.addingTimeInterval(90))
        #expect(WaitText.summary(timer, now: now) == "Waiting for timer edda.sleep:1 · fires in 1 min 30 s")
        let retry = InstanceWait(kind: .retry, stepID: "charge:2", deadline: now.addingTimeInterval(8), attempt: 2)
        #expect(WaitText.summary(retry, now: now) == "Waiting to retry step charge:2 (attempt 3) · next attempt in 8 s")
        #expect(WaitText.localTime(now, timeZone: TimeZone(identifier: "UTC")!) == "2096-10-02 07:06:40 GMT")
    }
}
