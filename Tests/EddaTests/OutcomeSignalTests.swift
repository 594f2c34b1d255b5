@_spi(EddaStores) import Edda
import Testing

/// `result()` waiters wake for their own instance's finish, not for every finish in the process.
@Suite("Outcome signal")
struct OutcomeSignalTests {
    @Test func aFinishWakesOnlyItsOwnWatchesAndIsRememberedUntilTheirNextWait() async {
        let signal = OutcomeSignal()
        let a = signal.watch("a")
        let b = signal.watch("b")
        defer { a.end(); b.end() }
        signal.notify(["a"])   // nobody waits yet: remembered for a's next wait
        let clock = ContinuousClock()
        var started = clock.now
        // Woken, not timed out: the bound is far from both, so a loaded machine cannot blur them.
        await a.wait(upTo: .seconds(60))
        #expect(clock.now - started < .seconds(30))
        started = clock.now
        await b.wait(upTo: .milliseconds(100))
        #expect(clock.now - started >= .milliseconds(100), "b's instance did not finish")

        signal.notifyAll()
        started = clock.now
        await b.wait(upTo: .seconds(60))
        #expect(clock.now - started < .seconds(30), "an unnamed finish wakes every watch")
    }

    @Test func endedWatchesAreForgotten() {
        let signal = OutcomeSignal()
        let first = signal.watch("a")
        let second = signal.watch("a")
        first.end()
        #expect(signal.isWatched("a"))
        second.end()
        #expect(!signal.isWatched("a"))
        signal.notify(["a"])   // no watch: nothing kept
        #expect(!signal.isWatched("a"))
    }
}
