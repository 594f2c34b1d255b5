@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

struct Reservation: Codable, Sendable, Equatable {
    var reserved: Bool
    var itemID: String
}

@Suite("Saga: compensation on failure", .timeLimit(.minutes(1)))
struct SagaTests {
    @Test(arguments: Backend.allCases)
    func seedOrderWorkflowCancelsReservationsInReverseOrder(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let cancelReservation = Compensation("cancel_reservation") { (ctx, reservation: Reservation, itemID: String) in
            #expect(reservation.itemID == itemID)
            log.record("❌ Cancelled reservation for \(itemID)")
        }
        let reserveInventory = Activity("reserve_inventory") { (ctx, itemID: String) -> Reservation in
            log.record("✅ Reserved \(itemID)")
            return Reservation(reserved: true, itemID: itemID)
        }.onFailure(cancelReservation)
        let chargePayment = Activity("charge_payment", retry: .noRetry) { (ctx) -> Bool in
            log.record("💥 charge_payment fails!")
            throw TerminalError("card declined")
        }
        let orderWorkflow = Workflow("order_workflow") { (ctx, item1: String, item2: String) -> String in
            _ = try await reserveInventory(ctx, item1)
            _ = try await reserveInventory(ctx, item2)
            _ = try await chargePayment(ctx)
            return "completed"
        }
        let (failure, instance, history) = try await backend.withTestApp { app in
            let handle = try await app.start(orderWorkflow, "item1", "item2")
            let failure = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (failure, try await handle.instance(), try await app.history(of: handle.instanceID))
        }
        #expect(log.all == [
            "✅ Reserved item1", "✅ Reserved item2", "💥 charge_payment fails!",
            "❌ Cancelled reservation for item2", "❌ Cancelled reservation for item1",
        ])
        #expect(failure.error == ErrorRecord(type: "TerminalError", message: "card declined"))
        #expect(instance.status == .failed)
        #expect(history.filter { $0.kind == .compensationCompleted }.map(\.stepID) == [
            "compensate:reserve_inventory:2", "compensate:reserve_inventory:1",
        ])
    }

    @Test(arguments: Backend.allCases)
    func seedSagaWorkflowUndoesBThenAAndNotC(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let undoA = Compensation("undo_a") { (ctx, result: String) in log.record("A: Undo") }
        let undoB = Compensation("undo_b") { (ctx, result: String) in log.record("B: Undo") }
        let undoC = Compensation("undo_c") { (ctx, result: String) in log.record("C: Undo") }
        let stepA = Activity("step_a") { (ctx) -> String in log.record("A: Execute"); return "done" }.onFailure(undoA)
        let stepB = Activity("step_b") { (ctx) -> String in log.record("B: Execute"); return "done" }.onFailure(undoB)
        struct CFailed: Error, CustomStringConvertible { var description: String { "C failed!" } }
        let stepC = Activity("step_c", retry: .noRetry) { (ctx) -> String in
            log.record("C: Execute")
            throw CFailed()
        }.onFailure(undoC)
        let sagaWorkflow = Workflow("saga_workflow") { (ctx) -> String in
            _ = try await stepA(ctx)
            _ = try await stepB(ctx)
            _ = try await stepC(ctx)
            return "completed"
        }
        let failure = try await backend.withTestApp { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(sagaWorkflow).result() }
        }
        #expect(log.all == ["A: Execute", "B: Execute", "C: Execute", "B: Undo", "A: Undo"])
        #expect(failure.error.type == "RetryExhaustedError")
        #expect(failure.error.message.contains("C failed!"))
    }

    @Test(arguments: Backend.allCases)
    func statusIsCompensatingWhileCompensationsRun(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let seen = ExecutionLog()
            let undo = Compensation("undo") { (ctx, result: Int) in
                seen.record(try await store.instance(ctx.instanceID)?.status.rawValue ?? "?")
            }
            let step = Activity("step") { (ctx) -> Int in 1 }.onFailure(undo)
            let failing = Workflow("failing") { (ctx) -> Int in
                _ = try await step(ctx)
                throw TerminalError("business rule broken")
            }
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            let instance = try await app.run { app in
                let handle = try await app.start(failing)
                _ = try? await handle.result()
                return try await handle.instance()
            }
            #expect(seen.all == ["compensating"])
            #expect(instance.status == .failed)
            #expect(instance.error?.message == "business rule broken")
        }
    }

    @Test(arguments: Backend.allCases)
    func failingCompensationIsRetriedRecordedAndTheRestStillRun(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let undoA = Compensation("undo_a") { (ctx, _: Int) in log.record("undo_a") }
        let undoB = Compensation("undo_b", retry: RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(1))) { (ctx, _: Int) in
            log.record("undo_b attempt \(ctx.attempt)")
            throw ConnectionError()
        }
        let a = Activity("a") { (ctx) -> Int in 1 }.onFailure(undoA)
        let b = Activity("b") { (ctx) -> Int in 2 }.onFailure(undoB)
        let workflow = Workflow("w") { (ctx) -> Int in
            _ = try await a(ctx)
            _ = try await b(ctx)
            throw TerminalError("original failure")
        }
        let (failure, history) = try await backend.withTestApp { app in
            let handle = try await app.start(workflow)
            let failure = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (failure, try await app.history(of: handle.instanceID))
        }
        #expect(log.all == ["undo_b attempt 1", "undo_b attempt 2", "undo_b attempt 3", "undo_a"])
        #expect(failure.error.message == "original failure")
        let outcomes = history.filter { $0.kind == .compensationCompleted || $0.kind == .compensationFailed }
        #expect(outcomes.map(\.kind) == [.compensationFailed, .compensationCompleted])
        #expect(outcomes.first?.retry?.exhausted == true)
        #expect(outcomes.first?.retry?.totalAttempts == 3)
    }

    @Test(arguments: Backend.allCases)
    func failedOrUnrunActivitiesAreNotCompensated(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let undo = Compensation("undo") { (ctx, _: Int, name: String) in log.record("undo \(name)") }
        let act = Activity("act", retry: .noRetry) { (ctx, name: String) -> Int in
            if name == "fails" { throw TerminalError("no") }
            return 1
        }.onFailure(undo)
        let workflow = Workflow("w") { (ctx) -> Int in
            _ = try await act(ctx, "ok")
            _ = try await act(ctx, "fails")
            _ = try await act(ctx, "never")
            return 0
        }
        _ = try await backend.withTestApp { app in try? await app.start(workflow).result() }
        #expect(log.all == ["undo ok"])
    }

    @Test(arguments: Backend.allCases)
    func manualCompensationRunsInOrderWithLinkedOnes(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let undoBook = Compensation("cancel_flight") { (ctx, booking: String) in log.record("cancel \(booking)") }
        let book = Activity("book_flight") { (ctx) -> String in "FL-1" }.onFailure(undoBook)
        let charge = Activity("charge") { (ctx) -> String in "CH-1" }
        let workflow = Workflow("trip") { (ctx) -> Int in
            _ = try await book(ctx)
            let receipt = try await charge(ctx)
            try ctx.addCompensation("refund") { _ in log.record("refund \(receipt)") }
            throw TerminalError("hotel full")
        }
        _ = try await backend.withTestApp { app in try? await app.start(workflow).result() }
        #expect(log.all == ["refund CH-1", "cancel FL-1"])
    }

    @Test(arguments: Backend.allCases)
    func recordedCompensationIsNotRunAgainOnResume(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let undoA = Compensation("undo_a") { (ctx, _: Int) in log.record("undo_a") }
        let undoB = Compensation("undo_b") { (ctx, _: Int) in log.record("undo_b") }
        let a = Activity("a") { (ctx) -> Int in log.record("a"); return 1 }.onFailure(undoA)
        let b = Activity("b") { (ctx) -> Int in log.record("b"); return 2 }.onFailure(undoB)
        let c = Activity("c") { (ctx) -> Int in log.record("c"); return 3 }
        let workflow = Workflow("w") { (ctx) -> Int in
            _ = try await a(ctx)
            _ = try await b(ctx)
            return try await c(ctx)
        }
        // The first process failed at c, compensated b, and died before compensating a.
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("w1", workflowName: "w", input: JSONPayload(json: "[]"), owner: "old")
            try await store.append(recorded("w1", "a:1", position: 1, name: "a", result: 1), lease: lease)
            try await store.append(recorded("w1", "b:1", position: 2, name: "b", result: 2), lease: lease)
            try await store.append(
                HistoryEvent(
                    instanceID: "w1", stepID: "c:1", position: 3, name: "c", kind: .activityFailed,
                    error: ErrorRecord(type: "TerminalError", message: "c broke")
                ),
                lease: lease
            )
            try await store.markCompensating(lease: lease)
            try await store.append(
                HistoryEvent(instanceID: "w1", stepID: "compensate:b:1", position: nil, name: "undo_b", kind: .compensationCompleted, payload: JSONPayload(json: "true")),
                lease: lease
            )
            try await store.release(lease, readyAt: nil)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(workflow)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: workflow, instanceID: "w1").result() }
            }
            #expect(log.all == ["undo_a"])
            #expect(failure.error.message == "c broke")
            #expect(try await store.instance("w1")?.status == .failed)
        }
    }
}
