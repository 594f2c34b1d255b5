import Foundation
import Testing

@testable import Edda

@Suite("Replay state: patch markers", .timeLimit(.minutes(1)))
struct PatchingReplayStateTests {
    func step(_ stepID: String, _ name: String, position: Int?) -> HistoryEvent {
        HistoryEvent(
            sequence: 0, instanceID: "i", stepID: stepID, position: position, name: name, kind: .activityCompleted,
            payload: JSONPayload(json: "1"), error: nil, retry: nil, recordedAt: Date()
        )
    }

    func marker(_ patchID: String, position: Int) -> HistoryEvent {
        HistoryEvent(
            sequence: 0, instanceID: "i", stepID: "edda.patch:\(patchID)", position: position, name: patchID, kind: .patchMarker,
            payload: JSONPayload(json: #"{"patch":"\#(patchID)"}"#), error: nil, retry: nil, recordedAt: Date()
        )
    }

    func decision(_ state: inout ReplayState, name: String) throws -> (position: Int?, replays: Bool) {
        let reservation = try state.reserve(name: name, explicitID: nil, topLevel: true)
        if case .replay = reservation.decision { return (reservation.position, true) }
        return (reservation.position, false)
    }

    @Test func aFreshRunTakesThePatchAndRecordsAMarkerAtTheNextPosition() throws {
        var state = ReplayState(instanceID: "i", history: [])
        _ = try state.reserve(name: "a", explicitID: nil, topLevel: true)
        #expect(try state.patch("p", topLevel: true) == .recordMarker(stepID: "edda.patch:p", position: 2))
        #expect(try state.patch("p", topLevel: true) == .decided(true), "asked again in one run: the same answer, nothing recorded")
        #expect(try decision(&state, name: "b") == (3, false))
    }

    @Test func anOldHistoryWithAStepAtThisPointTakesTheOldPath() throws {
        var state = ReplayState(instanceID: "i", history: [step("a:1", "a", position: 1), step("old:1", "old", position: 2)])
        #expect(try decision(&state, name: "a") == (1, true))
        #expect(try state.patch("p", topLevel: true) == .decided(false))
        #expect(try decision(&state, name: "old") == (2, true), "the old path keeps its recorded positions")
        #expect(try state.patch("p", topLevel: true) == .decided(false))
    }

    @Test func aStepRecordedAfterAGapAlsoMeansTheEarlierRunPassedThisPoint() throws {
        // Position 2 was reserved with prepare(…) and never finished; position 3 was recorded.
        var state = ReplayState(instanceID: "i", history: [step("a:1", "a", position: 1), step("c:1", "c", position: 3)])
        _ = try decision(&state, name: "a")
        #expect(try state.patch("p", topLevel: true) == .decided(false))
    }

    @Test func aReplayThatReachedTheEndOfItsHistoryRunsFreshAndTakesThePatch() throws {
        var state = ReplayState(instanceID: "i", history: [step("a:1", "a", position: 1)])
        #expect(try decision(&state, name: "a") == (1, true))
        #expect(try state.patch("p", topLevel: true) == .recordMarker(stepID: "edda.patch:p", position: 2))
        #expect(try decision(&state, name: "new") == (3, false))
    }

    @Test func aRecordedMarkerReplaysAsTrueAndItsPositionIsSkipped() throws {
        var state = ReplayState(
            instanceID: "i", history: [step("a:1", "a", position: 1), marker("p", position: 2), step("new:1", "new", position: 3)]
        )
        _ = try decision(&state, name: "a")
        #expect(try state.patch("p", topLevel: true) == .decided(true))
        #expect(try decision(&state, name: "new") == (3, true))
        #expect(!state.isReplaying)
        try state.verifyAllConsumed()
    }

    @Test func aMarkerWhoseCallWasRemovedIsSkippedNotADivergence() throws {
        let history = [step("a:1", "a", position: 1), marker("p", position: 2), step("new:1", "new", position: 3), marker("q", position: 4)]
        var removed = ReplayState(instanceID: "i", history: history)
        _ = try decision(&removed, name: "a")
        #expect(try decision(&removed, name: "new") == (3, true))
        try removed.verifyAllConsumed()

        var deprecated = ReplayState(instanceID: "i", history: history)
        _ = try decision(&deprecated, name: "a")
        try deprecated.deprecatePatch("p", topLevel: true)
        #expect(try decision(&deprecated, name: "new") == (3, true))
        try deprecated.deprecatePatch("q", topLevel: true)
        #expect(try decision(&deprecated, name: "next") == (5, false))
    }

    @Test func deprecatePatchAcceptsAHistoryWithoutTheMarker() throws {
        var state = ReplayState(instanceID: "i", history: [step("a:1", "a", position: 1), step("new:1", "new", position: 2)])
        _ = try decision(&state, name: "a")
        try state.deprecatePatch("p", topLevel: true)
        #expect(try decision(&state, name: "new") == (2, true))
    }

    @Test func aChangedPathAfterTheMarkerIsStillADivergence() throws {
        var state = ReplayState(instanceID: "i", history: [marker("p", position: 1), step("new:1", "new", position: 2)])
        #expect(try state.patch("p", topLevel: true) == .decided(true))
        let error = try #require(throws: NonDeterminismError.self) { try state.reserve(name: "other", explicitID: nil, topLevel: true) }
        #expect(error.position == 2 && error.recordedName == "new" && error.requestedName == "other")
    }

    @Test func patchingFromAConcurrentTaskIsRefused() throws {
        var state = ReplayState(instanceID: "i", history: [])
        let error = try #require(throws: EngineError.self) { try state.patch("p", topLevel: false) }
        #expect(error.code == .concurrentPatch)
        #expect(error.message.contains("ctx.patched(\"p\")"))
        #expect(throws: EngineError.self) { try state.deprecatePatch("p", topLevel: false) }
    }
}
