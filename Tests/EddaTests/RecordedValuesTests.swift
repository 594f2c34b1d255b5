@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

/// `ctx.now()`, `ctx.uuid()` and `ctx.random(in:)`: recorded on the first run, the same on replay.
@Suite("Recorded values")
struct RecordedValuesTests {
    struct Seen: Codable, Sendable, Hashable {
        var now: Date
        var uuid: UUID
        var dice: Int
        var ratio: Double
    }

    @Test(arguments: Backend.allCases)
    func aReplayGetsTheValuesTheFirstRunRecorded(_ backend: Backend) async throws {
        let runs = Mutex<[Seen]>([])
        let use = Activity("use", retry: .noRetry) { (ctx, seen: Seen) -> Seen in seen }
        let workflow = Workflow("values") { (ctx) -> Seen in
            let seen = Seen(
                now: try await ctx.now(), uuid: try await ctx.uuid(), dice: try await ctx.random(in: 1...6),
                ratio: try await ctx.random(in: 0.0..<1.0)
            )
            runs.withLock { $0.append(seen) }
            return try await use(ctx, seen)
        }
        let clock = ManualClock(now: Date(timeIntervalSince1970: 1_800_000_000))
        var configuration = EddaApp.Configuration.testing
        configuration.clock = clock
        // Writes: 1 create, 2–5 the four values, 6 the activity's record: failing it ends the run
        // without an outcome, and the next run replays the values.
        try await backend.withStore { base in
            let store = FaultyStore(base, failingWrites: [6])
            let result = try await withTestApp(store: store, configuration: configuration) { app in
                try await app.start(workflow, instanceID: "v").result()
            }
            let seen = runs.withLock { $0 }
            #expect(store.failedWrites == 1)
            #expect(seen.count == 2, "a first run and a replay")
            #expect(Set(seen).count == 1, "the replay got the recorded values (a fresh UUID would differ): \(seen)")
            #expect(result == seen.first)
            #expect(result.now == Date(timeIntervalSince1970: 1_800_000_000), "the app's clock, not the wall clock")
            #expect((1...6).contains(result.dice))
            let history = try await store.history(of: "v")
            #expect(history.map(\.stepID) == ["edda.now:1", "edda.uuid:1", "edda.random:1", "edda.random:2", "use:1"])
            #expect(history.prefix(4).allSatisfy { $0.kind == .valueRecorded })
        }
    }

    @Test(arguments: Backend.allCases)
    func aWorkflowThatReadsAValueWhereHistoryHasAnActivityIsStopped(_ backend: Backend) async throws {
        let step = Activity("step", retry: .noRetry) { (ctx) -> Int in 1 }
        let after = Workflow("changing") { (ctx) -> Int in
            _ = try await ctx.now()
            return try await step(ctx)
        }
        try await backend.withStore { store in
            let lease = try await store.createLeasedInstance("c", workflowName: "changing")
            try await store.append(
                HistoryEvent(instanceID: "c", stepID: "step:1", position: 1, name: "step", kind: .activityCompleted, payload: JSONPayload(json: "1")),
                lease: lease
            )
            try await store.release(lease, readyAt: nil)
            let error = try await withTestApp(store: store) { app in
                try app.register(after)
                return try await #require(throws: WorkflowFailedError.self) { try await app.handle(for: after, instanceID: "c").result() }
            }
            #expect(error.error.type == "NonDeterminismError")
            #expect(error.error.message.contains("edda.now:1"), "\(error.error.message)")
            #expect(try await store.history(of: "c").count == 1, "nothing was recorded over the history")
        }
    }
}
