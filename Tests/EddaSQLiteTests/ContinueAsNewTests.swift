import Edda
import EddaSQLite
import EddaTesting
import Foundation
import GRDB
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

    @Test func aRecurChainOfThreeEndsWithTheLastRunsResultAndArchivesTheOthers() async throws {
        let store = try SQLiteStore.inMemory()
        let result = try await withTestApp(store: store) { app in
            try await app.start(Self.counter, 1, 3, instanceID: "chain").result()
        }
        #expect(result == 300, "the result of the third run")
        let history = try await store.history(of: "chain")
        #expect(history.map(\.payload?.json) == ["3"], "only the last run's history is live")
        let (instance, archived) = try await store.writer.read { db in
            (
                try Row.fetchOne(db, sql: "SELECT input, run_generation, status FROM workflow_instances WHERE instance_id = 'chain'"),
                try Row.fetchAll(db, sql: "SELECT run_generation, payload FROM workflow_history_archive WHERE instance_id = 'chain' ORDER BY run_generation")
            )
        }
        #expect(instance?["run_generation"] == 3)
        #expect(instance?["input"] == "[3,3]")
        #expect(archived.map { [$0["run_generation"] as Int, Int($0["payload"] as String)!] } == [[1, 1], [2, 2]])
    }

    @Test func argumentsThatAreNotTheWorkflowsFailTheInstanceAndKeepItsHistory() async throws {
        let wrong = Workflow("wrong") { (ctx, n: Int) -> Int in
            _ = try await Self.count(ctx, n)
            try ctx.continueAsNew(with: "not a number")
        }
        let store = try SQLiteStore.inMemory()
        let failure = try await withTestApp(store: store) { app in
            try await #require(throws: WorkflowFailedError.self) { try await app.start(wrong, 7, instanceID: "w").result() }
        }
        #expect(failure.error.message.contains("not those of workflow 'wrong'"), "\(failure.error.message)")
        #expect(try await store.history(of: "w").count == 1)
        #expect(try await store.instance("w")?.status == .failed)
    }
}
