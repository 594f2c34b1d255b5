import Edda
import EddaPostgres
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

/// Events and channels between two workers (two stores, two pools) on one PostgreSQL database.
@Suite("PostgreSQL: events and channels across workers", .enabled(if: PostgresTestDatabase.isAvailable, "set EDDA_POSTGRES_URL"), .timeLimit(.minutes(2)))
struct PostgresMessagingTests {
    static let jobs = Channel<Int>("jobs", mode: .competing)

    /// Takes jobs until it takes a -1 (one per consumer, published after the jobs).
    static let consumer = Workflow("consumer") { (ctx, _: Int) -> [Int] in
        var taken: [Int] = []
        while true {
            let job = try await ctx.receive(jobs, timeout: .seconds(60)).data
            if job < 0 { return taken }
            taken.append(job)
        }
    }

    static let approval = Workflow("approval") { (ctx, request: String) -> String in
        let decision = try await ctx.waitForEvent(type: "approval.decided", as: String.self, timeout: .seconds(60))
        return "\(request): \(decision.data)"
    }

    static let square = Workflow("square") { (ctx, n: Int) -> Int in n * n }

    /// Sums the squares of 1...n, each computed by a child.
    static let sumOfSquares = Workflow("sum_of_squares") { (ctx, n: Int) -> Int in
        var children: [ChildWorkflow<Int>] = []
        for index in 1...n { children.append(try await ctx.startChild(square, index, childID: "square-\(index)")) }
        var total = 0
        for child in children { total += try await child.result() }
        return total
    }

    /// Two apps on one schema; `body` gets both, running.
    func withTwoWorkers<T: Sendable>(_ body: @escaping @Sendable (EddaApp, EddaApp) async throws -> T) async throws -> T {
        let schema = "edda_test_\(UUID().uuidString.prefix(8).lowercased())"
        var configuration = EddaApp.Configuration.testing
        configuration.workerID = "worker-a"
        let appA = EddaApp(
            store: try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet),
            serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet
        )
        configuration.workerID = "worker-b"
        let appB = EddaApp(
            store: try PostgresStore(configuration: PostgresTestDatabase.configuration(schema: schema), logger: PostgresTestDatabase.quiet),
            serviceName: "test", configuration: configuration, logger: PostgresTestDatabase.quiet
        )
        for app in [appA, appB] {
            try app.register(Self.consumer)
            try app.register(Self.approval)
            try app.register(Self.square)
            try app.register(Self.sumOfSquares)
        }
        let result = try await appB.run { appB in try await appA.run { appA in try await body(appA, appB) } }
        try await PostgresTestDatabase.withStore(schema: schema) { _ in }
        return result
    }

    @Test func competingConsumersOnTwoWorkersTakeEachMessageExactlyOnce() async throws {
        let (first, second) = try await withTwoWorkers { appA, appB in
            let first = try await appA.start(Self.consumer, 1, instanceID: "consumer-1")
            let second = try await appB.start(Self.consumer, 2, instanceID: "consumer-2")
            // Published from both workers' stores at once.
            async let fromA: Void = { for job in stride(from: 0, to: 100, by: 2) { try await appA.publish(Self.jobs, job) } }()
            async let fromB: Void = { for job in stride(from: 1, to: 100, by: 2) { try await appB.publish(Self.jobs, job) } }()
            _ = try await (fromA, fromB)
            for _ in 0..<2 { try await appA.publish(Self.jobs, -1) }
            return (try await first.result(), try await second.result())
        }
        #expect((first + second).sorted() == Array(0..<100), "each message consumed exactly once in total")
    }

    @Test func anEventFromAnotherWorkerWakesTheWaiter() async throws {
        let (result, history) = try await withTwoWorkers { appA, appB in
            let handle = try await appA.start(Self.approval, "expense 17", instanceID: "approval-1")
            // Wait until it waits (released, with a wait registered), then decide from the other worker.
            let deadline = ContinuousClock.now + .seconds(10)
            while try await appB.sendEvent(
                try CloudEvent(type: "approval.decided", source: "/managers", json: "approved")
            ).isEmpty {
                guard ContinuousClock.now < deadline else { throw CancellationError() }
                try await Task.sleep(for: .milliseconds(10))
            }
            return (try await handle.result(), try await appB.history(of: "approval-1"))
        }
        #expect(result == "expense 17: approved")
        #expect(history.map(\.kind) == [.messageReceived])
    }

    @Test func childrenRunOnEitherWorkerAndReportToTheirParent() async throws {
        let (total, history) = try await withTwoWorkers { appA, appB in
            let total = try await appA.start(Self.sumOfSquares, 6, instanceID: "sum").result()
            return (total, try await appB.history(of: "sum"))
        }
        #expect(total == 91)
        #expect(history.filter { $0.kind == .childStarted }.count == 6)
        #expect(history.filter { $0.kind == .messageReceived }.map(\.stepID) == (1...6).map { "square-\($0)/result" })
    }

    @Test func cancellingAParentOnOneWorkerCancelsItsChildOnTheOther() async throws {
        let statuses = try await withTwoWorkers { appA, appB in
            let parent = Workflow("approval_parent") { (ctx, _: Int) -> String in
                try await ctx.runChild(Self.approval, "budget", childID: "approval")
            }
            try appA.register(parent)
            try appB.register(parent)
            _ = try await appA.start(parent, 0, instanceID: "ap")
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                let (child, parent) = (try await appB.instance("ap/approval"), try await appB.instance("ap"))
                if child?.readyAt != nil, parent?.readyAt != nil { break }
                guard ContinuousClock.now < deadline else { throw CancellationError() }
                try await Task.sleep(for: .milliseconds(10))
            }
            try await appB.cancel("ap")
            await #expect(throws: WorkflowCancelledError.self) { try await appB.handle(for: parent, instanceID: "ap").result() }
            await #expect(throws: WorkflowCancelledError.self) { try await appA.handle(for: Self.approval, instanceID: "ap/approval").result() }
            return (try await appA.instance("ap")?.status, try await appA.instance("ap/approval")?.status)
        }
        #expect(statuses.0 == .cancelled)
        #expect(statuses.1 == .cancelled)
    }
}
