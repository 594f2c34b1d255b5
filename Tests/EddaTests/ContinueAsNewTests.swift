import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// `ctx.continueAsNew(with:)`: a new run of the same instance, the old run's history archived.
@Suite("Continue as new", .timeLimit(.minutes(1)))
struct ContinueAsNewTests {
    static let count = Activity("count") { (ctx, n: Int) -> Int in n }
    static let counter = Workflow("counter") { (ctx, n: Int, limit: Int) -> Int in
        let seen = try await count(ctx, n)
        if seen < limit { try ctx.continueAsNew(with: n + 1, limit) }
        return seen * 100
    }

    @Test(arguments: Backend.allCases)
    func aRecurChainOfThreeEndsWithTheLastRunsResultAndArchivesTheOthers(_ backend: Backend) async throws {
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(Self.counter, 1, 3, instanceID: "chain").result()
            }
            #expect(result == 300, "the result of the third run")
            #expect(try await store.history(of: "chain").map(\.payload?.json) == ["3"], "only the last run's history is live")
            let instance = try #require(try await store.instance("chain"))
            #expect(instance.runNumber == 3)
            #expect(instance.input.json == "[3,3]", "the last run's input")
            #expect(instance.status == .completed)
            let archived = try await Backend.archivedHistory(of: "chain", in: store)
            #expect(archived == [ArchivedRecord(run: 1, payload: "1"), ArchivedRecord(run: 2, payload: "2")], "earlier runs, by run number")
        }
    }

    @Test(arguments: Backend.allCases)
    func argumentsThatAreNotTheWorkflowsFailTheInstanceAndKeepItsHistory(_ backend: Backend) async throws {
        let wrong = Workflow("wrong") { (ctx, n: Int) -> Int in
            _ = try await Self.count(ctx, n)
            try ctx.continueAsNew(with: "not a number")
        }
        try await backend.withStore { store in
            let failure = try await withTestApp(store: store) { app in
                try await #require(throws: WorkflowFailedError.self) { try await app.start(wrong, 7, instanceID: "w").result() }
            }
            #expect(failure.error.message.contains("not those of workflow 'wrong'"), "\(failure.error.message)")
            #expect(try await store.history(of: "w").count == 1)
            #expect(try await store.instance("w")?.status == .failed)
        }
    }
}
