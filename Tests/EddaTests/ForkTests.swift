@_spi(EddaStores) import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Synchronization
import Testing

@Suite("Forks: restarting from any step", .timeLimit(.minutes(1)))
struct ForkTests {
    @Test(arguments: Backend.allCases)
    func aForkFromTheMiddleOfATenStepWorkflowReplaysTheStepsBeforeAndRunsTheRestWithTodaysCode(_ backend: Backend) async throws {
        let log = ExecutionLog()
        let broken = Mutex(true)
        let step = Activity("step", retry: .noRetry) { (ctx, n: Int) -> Int in
            log.record("\(ctx.instanceID) \(ctx.stepID)")
            if n == 7, broken.withLock({ $0 }) { throw TerminalError("step 7 is broken") }
            return n
        }
        let workflow = Workflow("ten_steps") { (ctx) -> Int in
            var total = 0
            for n in 1...10 { total += try await step(ctx, n) }
            return total
        }
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                await #expect(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: "original").result() }
                let before = try await store.history(of: "original")
                broken.withLock { $0 = false }   // today's code: step 7 works

                let fork = try await app.fork("original", fromStep: "step:5", instanceID: "forked")
                #expect(fork.instanceID == "forked")
                #expect(fork.copiedRecords == 4)
                #expect(fork.rerunSteps == ["step:5", "step:6", "step:7"])
                #expect(fork.notes.first?.contains("3 steps recorded from step:5 on run again") == true, "\(fork.notes)")
                #expect(try await app.handle(for: workflow, instanceID: "forked").result() == 55)

                // Steps 1-4 replayed from the copy; 5-10 ran in the fork.
                #expect(log.all.filter { $0.hasPrefix("forked ") } == (5...10).map { "forked step:\($0)" })
                let history = try await store.history(of: "forked")
                #expect(history.map(\.stepID) == (1...10).map { "step:\($0)" })
                #expect(Array(history.prefix(4).map(\.payload)) == Array(before.prefix(4).map(\.payload)))
                let forked = try #require(try await app.instance("forked"))
                #expect(forked.forkedFrom == "original")
                #expect(forked.forkedFromStep == "step:5")
                // The original is left as it was.
                #expect(try await app.instance("original")?.status == .failed)
                #expect(try await store.history(of: "original").map(\.sequence) == before.map(\.sequence))
                #expect(try await app.instance("original")?.forkedFrom == nil)
            }
        }
    }

    @Test
    func aForkNamesWhatItCannotDo() async throws {
        let step = Activity("step", retry: .noRetry) { (ctx, n: Int) -> Int in n }
        let child = Workflow("child") { (ctx, n: Int) -> Int in try await step(ctx, n) }
        let parent = Workflow("parent") { (ctx) -> Int in
            let started = try await ctx.startChild(child, 1)
            let first = try await step(ctx, 2)
            return try await started.result() + first
        }
        try await Backend.sqlite.withStore { store in
            try await withTestApp(store: store) { app in
                try app.register(child)
                #expect(try await app.start(parent, instanceID: "p").result() == 3)
                let steps = try await store.history(of: "p").map(\.stepID)
                let childStep = try #require(steps.first)

                let unknown = await #expect(throws: EngineError.self) { try await app.fork("p", fromStep: "nope:1") }
                #expect(unknown?.code == .stepNotFound)
                #expect(unknown?.message.contains(childStep) == true, "it lists the steps there are")
                let missing = await #expect(throws: EngineError.self) { try await app.fork("nobody", fromStep: "step:1") }
                #expect(missing?.code == .instanceNotFound)
                // After the child's start and before its result: the child reports to the original.
                let refused = await #expect(throws: EngineError.self) { try await app.fork("p", fromStep: "step:1") }
                #expect(refused?.code == .forkRefused)
                #expect(refused?.message.contains("Fork from \(childStep)") == true, "\(refused?.message ?? "")")
                // From the child's start: the fork starts a child of its own.
                let fork = try await app.fork("p", fromStep: childStep, instanceID: "p2")
                #expect(try await app.handle(for: parent, instanceID: "p2").result() == 3)
                #expect(fork.copiedRecords == 0)
                let taken = await #expect(throws: EngineError.self) { try await app.fork("p", fromStep: childStep, instanceID: "p2") }
                #expect(taken?.code == .instanceAlreadyExists)
                #expect(try await app.instances(status: .completed).count == 4, "p, its child, p2, and p2's child")
            }
        }
    }
}
