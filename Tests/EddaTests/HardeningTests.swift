@testable import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Logging
import Synchronization
import Testing

/// What a user sees and can do next when something goes wrong: fatal errors still compensate,
/// reserved step IDs, compensations without the result, errors that keep their cause.
@Suite("Hardening: fatal errors, reserved IDs, compensations", .timeLimit(.minutes(1)))
struct HardeningTests {
    @Test(arguments: Backend.allCases)
    func aCompensationThatNeedsNeitherResultNorArgumentsIsDeclaredWithoutThem(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let reserveA = Activity("reserve_a") { (_: ActivityContext, item: String) -> Int in log.record("reserve \(item)"); return 1 }
            .onFailure("undo_a") { _ in log.record("undo_a") }
        let fail = Activity("fail", retry: .noRetry) { (_: ActivityContext) -> Int in throw TerminalError("no") }
        let saga = Workflow("saga_plain_undo") { (ctx: WorkflowContext, item: String) -> Int in
            _ = try await reserveA(ctx, item)
            return try await fail(ctx)
        }
        let history = try await backend.withTestApp { app in
            let handle = try await app.start(saga, "x")
            await #expect(throws: WorkflowFailedError.self) { try await handle.result() }
            return try await app.history(of: handle.instanceID)
        }
        #expect(log.all == ["reserve x", "undo_a"])
        #expect(history.last?.stepID == "compensate:reserve_a:1" && history.last?.name == "undo_a")
    }

    @Test(arguments: Backend.allCases)
    func anExplicitStepIDCannotTakeTheCompensationPrefix(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let step = Activity("step") { (_: ActivityContext) -> Int in log.record("step"); return 1 }
        let workflow = Workflow("reserved_id") { (ctx: WorkflowContext) -> Int in try await step(ctx, activityID: "compensate:step:1") }
        let failure = try await backend.withTestApp { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(workflow).result() }
        }
        #expect(failure.error.message.contains("'compensate:'"), "\(failure.error)")
        #expect(log.all.isEmpty, "the step did not run")
        #expect((failure.cause as? RecordedError)?.record == failure.error, "the failure carries its recorded cause")
    }

    @Test(arguments: Backend.allCases)
    func aReusedStepIDFailsTheInstanceAfterUndoingWhatRan(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let book = Activity("book") { (_: ActivityContext) -> Int in log.record("book"); return 1 }.onFailure("unbook") { _ in log.record("unbook") }
        let other = Activity("other") { (_: ActivityContext) -> Int in log.record("other"); return 2 }
        let workflow = Workflow("reused_id") { (ctx: WorkflowContext) -> Int in
            _ = try await book(ctx)
            return try await other(ctx, activityID: "book:1")
        }
        let (failure, status) = try await backend.withTestApp { app in
            let handle = try await app.start(workflow)
            let failure = try await #require(throws: WorkflowFailedError.self) { try await handle.result() }
            return (failure, try await handle.instance().status)
        }
        #expect(failure.error.message.contains("'book:1' was used twice"), "\(failure.error)")
        #expect(log.all == ["book", "unbook"], "the completed step's compensation ran before the instance failed")
        #expect(status == .failed)
    }

    /// History recorded by version 1: `book` completed (its compensation registers on replay), then
    /// `pay` completed. Version 2 calls `ship` where `pay` was.
    @Test(arguments: Backend.allCases)
    func divergentCodeCompensatesTheStepsReplayedBeforeTheDivergence(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let book = Activity("book") { (_: ActivityContext) -> Int in log.record("book"); return 1 }.onFailure("unbook") { _ in log.record("unbook") }
        let ship = Activity("ship") { (_: ActivityContext) -> Int in log.record("ship"); return 3 }
        let workflow = Workflow("diverged") { (ctx: WorkflowContext) -> Int in
            _ = try await book(ctx)
            return try await ship(ctx)
        }
        try await backend.withStore { store in
            try await store.seedInstance("d1", workflowName: "diverged", history: [
                try recorded("d1", "book:1", position: 1, name: "book", result: 1),
                try recorded("d1", "pay:1", position: 2, name: "pay", result: 2),
            ])
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(workflow)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: workflow, instanceID: "d1").result() }
            }
            #expect(failure.error.type == "NonDeterminismError")
            #expect(log.all == ["unbook"], "no fresh step ran; the replayed step was compensated")
            #expect(try await store.history(of: "d1").contains { $0.stepID == "compensate:book:1" && $0.kind == .compensationCompleted })
        }
    }

    /// An instance that was rolling back when its worker died, resumed by code that now returns.
    @Test(arguments: Backend.allCases)
    func aRollbackResumedByCodeThatNowSucceedsStillFinishesItsCompensations(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let book = Activity("book") { (_: ActivityContext) -> Int in log.record("book"); return 1 }.onFailure("unbook") { _ in log.record("unbook") }
        let hold = Activity("hold") { (_: ActivityContext) -> Int in log.record("hold"); return 2 }.onFailure("release") { _ in log.record("release") }
        let workflow = Workflow("rolled_back") { (ctx: WorkflowContext) -> Int in
            _ = try await book(ctx)
            return try await hold(ctx)   // version 1 failed after this; version 2 returns
        }
        try await backend.withStore { store in
            try await store.seedInstance("r1", workflowName: "rolled_back", history: [
                try recorded("r1", "book:1", position: 1, name: "book", result: 1),
                try recorded("r1", "hold:1", position: 2, name: "hold", result: 2),
                HistoryEvent(instanceID: "r1", stepID: "compensate:hold:1", position: nil, name: "release", kind: .compensationCompleted),
            ], compensating: true)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(workflow)
            let failure = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: workflow, instanceID: "r1").result() }
            }
            #expect(failure.error.type == "NonDeterminismError")
            #expect(log.all == ["unbook"], "the compensation not yet run ran; the recorded one did not run again")
            #expect(try await store.instance("r1")?.status == .failed)
        }
    }

    /// A compensation whose attempt record cannot be read is recorded as failed with the reason, not
    /// run again from its first attempt, and the other compensations still run.
    @Test(arguments: Backend.allCases)
    func anUnreadableAttemptRecordFailsTheCompensationAndTheOthersStillRun(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let book = Activity("book") { (_: ActivityContext) -> Int in log.record("book"); return 1 }.onFailure("unbook") { _ in log.record("unbook") }
        let hold = Activity("hold") { (_: ActivityContext) -> Int in log.record("hold"); return 2 }.onFailure("release") { _ in log.record("release") }
        let fail = Activity("fail", retry: .noRetry) { (_: ActivityContext) -> Int in throw TerminalError("no") }
        let workflow = Workflow("garbled") { (ctx: WorkflowContext) -> Int in
            _ = try await book(ctx)
            _ = try await hold(ctx)
            return try await fail(ctx)
        }
        try await backend.withStore { store in
            try await store.seedInstance("g1", workflowName: "garbled", history: [
                try recorded("g1", "book:1", position: 1, name: "book", result: 1),
                try recorded("g1", "hold:1", position: 2, name: "hold", result: 2),
                HistoryEvent(instanceID: "g1", stepID: "fail:1", position: 3, name: "fail", kind: .activityFailed, error: ErrorRecord(type: "TerminalError", message: "no")),
                HistoryEvent(instanceID: "g1", stepID: "compensate:hold:1", position: nil, name: "release", kind: .attemptFailed, payload: JSONPayload(json: "\"garbled\"")),
            ], compensating: true)
            let app = EddaApp(store: store, serviceName: "test", configuration: .testing)
            try app.register(workflow)
            _ = try await app.run { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: workflow, instanceID: "g1").result() }
            }
            #expect(log.all == ["unbook"], "release did not run again; unbook still ran")
            let outcome = try #require(try await store.history(of: "g1").first { $0.stepID == "compensate:hold:1" && $0.kind == .compensationFailed })
            #expect(outcome.error?.message.contains("attempt record cannot be read") == true, "\(String(describing: outcome.error))")
        }
    }
}

/// A log handler that keeps what it is given, for checking what a library logs.
final class CapturedLog: Sendable {
    let entries = Mutex<[(level: Logger.Level, message: String)]>([])

    var logger: Logger {
        Logger(label: "edda.test") { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.entries.withLock { $0.append((event.level, "\(event.message)")) }
        }
    }
}

@Suite("Hardening: a library logs quietly", .timeLimit(.minutes(1)))
struct QuietLoggingTests {
    @Test func routineRunsLogOneInfoLineAndFailuresTheCallerGetsAreNotLoggedAgain() async throws {
        let log = CapturedLog()
        let fail = Activity("fail", retry: .noRetry) { (_: ActivityContext) -> Int in throw TerminalError("no") }
        let ok = Workflow("quiet_ok") { (_: WorkflowContext, n: Int) -> Int in n }
        let bad = Workflow("quiet_bad") { (ctx: WorkflowContext) -> Int in try await fail(ctx) }
        // Long leases: on a loaded machine, a late renewal is a real (and logged) event, not routine.
        var configuration = EddaApp.Configuration.testing
        configuration.leaseDuration = .seconds(60)
        configuration.leaseRenewalInterval = .seconds(20)
        try await withTestApp(configuration: configuration, logger: log.logger) { app in
            for index in 0..<5 { _ = try await app.start(ok, index).result() }
            await #expect(throws: WorkflowFailedError.self) { try await app.start(bad).result() }
        }
        let entries = log.entries.withLock { $0 }
        #expect(entries.filter { $0.level >= .warning }.isEmpty, "\(entries)")
        #expect(entries.filter { $0.level == .info }.map(\.message) == ["edda worker running"], "\(entries)")
    }
}

@Suite("Hardening: error text")
struct ErrorTextTests {
    @Test func aFailuresDescriptionLeavesOutWhatTheActivitySaidAndItsDebugDescriptionHasIt() async throws {
        let lookUp = Activity("look_up", retry: .noRetry) { (_: ActivityContext, email: String) -> Int in
            throw TerminalError("no account for \(email)")
        }
        let workflow = Workflow("private_failure") { (ctx: WorkflowContext, email: String) -> Int in try await lookUp(ctx, email) }
        let failure = try await withTestApp { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(workflow, "ada@example.com").result() }
        }
        #expect(!"\(failure)".contains("ada@example.com") && "\(failure)".contains("failed with TerminalError"), "\(failure)")
        #expect(String(reflecting: failure).contains("no account for ada@example.com"))
        #expect(failure.error.message == "no account for ada@example.com", "the record keeps it")
        let exhausted = RetryExhaustedError(
            activityName: "a", stepID: "a:1", attempts: 2, totalDuration: .seconds(1),
            errors: [ErrorRecord(type: "E", message: "ada@example.com")], cause: nil
        )
        #expect(!"\(exhausted)".contains("ada@") && String(reflecting: exhausted).contains("ada@"))
    }
}
