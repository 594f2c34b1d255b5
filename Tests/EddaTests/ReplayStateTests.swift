import Foundation
import Testing

@testable import Edda

@Suite("Replay state: step IDs and the determinism check", .timeLimit(.minutes(1)))
struct ReplayStateTests {
    func event(_ sequence: Int64, _ stepID: String, _ name: String, position: Int?) -> HistoryEvent {
        HistoryEvent(
            sequence: sequence, instanceID: "i", stepID: stepID, position: position, name: name, kind: .activityCompleted,
            payload: JSONPayload(json: "1"), error: nil, retry: nil, recordedAt: Date()
        )
    }

    @Test func defaultIDsCountPerName() throws {
        var state = ReplayState(instanceID: "i", history: [])
        #expect(try state.reserve(name: "a", explicitID: nil, topLevel: true).stepID == "a:1")
        #expect(try state.reserve(name: "b", explicitID: nil, topLevel: true).stepID == "b:1")
        #expect(try state.reserve(name: "a", explicitID: nil, topLevel: true).stepID == "a:2")
        #expect(try state.reserve(name: "a", explicitID: "custom", topLevel: true).stepID == "custom")
        #expect(state.stepCount == 4)
    }

    @Test func recordedStepsReplayInOrder() throws {
        var state = ReplayState(instanceID: "i", history: [event(1, "a:1", "a", position: 1), event(2, "b:1", "b", position: 2)])
        #expect(state.isReplaying)
        guard case .replay = try state.reserve(name: "a", explicitID: nil, topLevel: true).decision else {
            Issue.record("a:1 should replay")
            return
        }
        #expect(state.isReplaying)
        guard case .replay = try state.reserve(name: "b", explicitID: nil, topLevel: true).decision else {
            Issue.record("b:1 should replay")
            return
        }
        #expect(!state.isReplaying)
        guard case .execute = try state.reserve(name: "c", explicitID: nil, topLevel: true).decision else {
            Issue.record("c:1 should execute")
            return
        }
        try state.verifyAllConsumed()
    }

    @Test func renamedStepAtPositionIsNonDeterministic() throws {
        var state = ReplayState(instanceID: "i", history: [event(1, "a:1", "a", position: 1)])
        let error = try #require(throws: NonDeterminismError.self) {
            try state.reserve(name: "z", explicitID: nil, topLevel: true)
        }
        #expect(error.position == 1)
        #expect(error.recordedName == "a")
        #expect(error.requestedName == "z")
        #expect(error.message.contains("'a'") && error.message.contains("'z'"))
    }

    @Test func reorderedStepsAreNonDeterministic() throws {
        var state = ReplayState(instanceID: "i", history: [event(1, "a:1", "a", position: 1), event(2, "b:1", "b", position: 2)])
        let error = try #require(throws: NonDeterminismError.self) {
            try state.reserve(name: "b", explicitID: nil, topLevel: true)
        }
        #expect(error.position == 1)
        #expect(error.recordedStepID == "a:1")
        #expect(error.requestedStepID == "b:1")
    }

    @Test func sameIDUnderAnotherNameIsNonDeterministic() throws {
        var state = ReplayState(instanceID: "i", history: [event(1, "item:1", "charge", position: nil)])
        #expect(throws: NonDeterminismError.self) {
            try state.reserve(name: "refund", explicitID: "item:1", topLevel: false)
        }
    }

    @Test func skippedStepIsReportedAtTheEnd() throws {
        var state = ReplayState(instanceID: "i", history: [event(1, "a:1", "a", position: 1), event(2, "b:1", "b", position: 2)])
        _ = try state.reserve(name: "a", explicitID: nil, topLevel: true)
        let error = try #require(throws: NonDeterminismError.self) { try state.verifyAllConsumed() }
        #expect(error.recordedStepID == "b:1")
        #expect(error.requestedName == nil)
    }

    @Test func concurrentStepsMatchByIDInAnyOrder() throws {
        // Recorded by child tasks (no position), requested back in another order.
        var state = ReplayState(instanceID: "i", history: [event(1, "b:1", "b", position: nil), event(2, "a:1", "a", position: nil)])
        _ = try state.reserve(name: "a", explicitID: nil, topLevel: false)
        _ = try state.reserve(name: "b", explicitID: nil, topLevel: false)
        try state.verifyAllConsumed()
    }

    @Test func gapsFromInFlightConcurrentStepsAreAllowed() throws {
        // Positions 1 and 3 recorded; 2 was in flight when the process died.
        var state = ReplayState(instanceID: "i", history: [event(1, "p:1", "p", position: 1), event(2, "p:3", "p", position: 3)])
        for index in 1...3 {
            let reservation = try state.reserve(name: "p", explicitID: nil, topLevel: true)
            #expect(reservation.position == index)
            if index == 2 {
                guard case .execute = reservation.decision else {
                    Issue.record("p:2 should execute")
                    return
                }
            }
        }
        try state.verifyAllConsumed()
    }

    @Test func duplicateIDIsAnError() throws {
        var state = ReplayState(instanceID: "i", history: [])
        _ = try state.reserve(name: "a", explicitID: "x", topLevel: true)
        let error = try #require(throws: EngineError.self) {
            try state.reserve(name: "a", explicitID: "x", topLevel: true)
        }
        #expect(error.code == .duplicateStepID)
        #expect(error.stepID == "x")
    }
}
