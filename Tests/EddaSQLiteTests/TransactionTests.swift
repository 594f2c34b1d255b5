import Edda
import EddaSQLite
import EddaTesting
import Foundation
import GRDB
import Synchronization
import Testing

/// `ctx.transaction`, `ctx.session`, `ctx.inTransaction`, `ctx.afterCommit` and `ctx.enqueue` on SQLite.
@Suite("Transactional activities (SQLite)", .timeLimit(.minutes(1)))
struct TransactionTests {
    /// A store with a user table `orders(id TEXT PRIMARY KEY, note TEXT)`, and an app on it.
    func withOrdersApp<Result: Sendable>(_ body: @escaping @Sendable (EddaApp, SQLiteStore) async throws -> Result) async throws -> Result {
        let store = try SQLiteStore.inMemory()
        try await store.writer.write { db in
            try db.execute(sql: "CREATE TABLE orders (id TEXT PRIMARY KEY NOT NULL, note TEXT)")
        }
        return try await withTestApp(store: store) { app in try await body(app, store) }
    }

    func orderNotes(_ store: SQLiteStore) async throws -> [String: String] {
        try await store.writer.read { db in
            try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT id, note FROM orders").map { ($0["id"] as String, $0["note"] as String? ?? "") })
        }
    }

    @Test func writesCommitWithTheStepRecord() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let seen = Mutex<[String]>([])
            let place = Activity("place") { (ctx, id: String) -> String in
                seen.withLock { $0.append("body inTransaction=\(ctx.inTransaction)") }
                try ctx.transaction { db in
                    seen.withLock { $0.append("tx inTransaction=\(ctx.inTransaction)") }
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'via db')", arguments: [id])
                    // The seed's ctx.session is the same connection.
                    try ctx.session.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'via session')", arguments: [id + "-s"])
                }
                return "placed \(id)"
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> String in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "i1").result() == "placed o1")
            #expect(try await orderNotes(store) == ["o1": "via db", "o1-s": "via session"])
            #expect(seen.withLock { $0 } == ["body inTransaction=false", "tx inTransaction=true"])
            let history = try await app.history(of: "i1")
            #expect(history.map(\.kind) == [.activityCompleted])
        }
    }

    @Test func anotherTaskCannotUseTheConnectionWhileTheStepCommits() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let stray = StrayOutcome()
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'main')", arguments: [id])
                    // Another task asks while this body runs on the writer's connection.
                    let asked = DispatchSemaphore(value: 0)
                    Task.detached {
                        do {
                            try ctx.transaction { db in try db.execute(sql: "INSERT INTO orders (id, note) VALUES ('stray', 'x')") }
                            try ctx.enqueue(CloudEvent(type: "stray", source: "/test"))
                            stray.set("accepted")
                        } catch {
                            stray.set("\(error)")
                        }
                        asked.signal()
                    }
                    asked.wait()
                }
                return 1
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "i1").result() == 1)
            let refusal = try #require(stray.value)
            #expect(refusal.contains("from another task or thread while step 'place:1' commits"), "\(refusal)")
            #expect(try await orderNotes(store) == ["o1": "main"], "the stray body wrote nothing")
            #expect(try await store.outboxEvents(status: nil, limit: 10).isEmpty)
        }
    }

    @Test func aFailedAttemptCommitsNothingAndTheRetryCommitsOnce() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, ?)", arguments: [id, "attempt \(ctx.attempt)"])
                }
                if ctx.attempt == 1 { throw FlakyNetwork() }
                return ctx.attempt
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "i1").result() == 2)
            #expect(try await orderNotes(store) == ["o1": "attempt 2"])
        }
    }

    @Test func aThrowingBodyRollsBackItsWritesAndIsRetried() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, ?)", arguments: [id, "attempt \(ctx.attempt)"])
                    if ctx.attempt == 1 { throw FlakyNetwork() }
                }
                return ctx.attempt
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "i1").result() == 2)
            #expect(try await orderNotes(store) == ["o1": "attempt 2"])
            let history = try await app.history(of: "i1")
            #expect(history.map(\.kind) == [.attemptFailed, .activityCompleted])
            #expect(history.first?.error?.type == "FlakyNetwork")
        }
    }

    @Test func aTerminalErrorInABodyFailsTheStepWithoutWrites() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id) VALUES (?)", arguments: [id])
                    throw TerminalError("out of stock")
                }
                return 1
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            let error = try await #require(throws: WorkflowFailedError.self) {
                try await app.start(workflow, "o1", instanceID: "i1").result()
            }
            #expect(error.error.message == "out of stock")
            #expect(try await orderNotes(store).isEmpty)
            #expect(try await app.history(of: "i1").map(\.kind) == [.activityFailed])
        }
    }

    @Test func nestedTransactionsAreSavepoints() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place") { (ctx, id: String) -> Bool in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'outer')", arguments: [id])
                    do {
                        try ctx.transaction { db in
                            try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'inner')", arguments: [id + "-inner"])
                            try ctx.enqueue(CloudEvent(type: "inner.done", source: "/tests"))
                            try ctx.afterCommit { Issue.record("the rolled-back savepoint's callback ran") }
                            throw TerminalError("inner gives up")
                        }
                    } catch is TerminalError {
                        // Only the inner savepoint rolled back.
                    }
                    try ctx.transaction { db in
                        try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'second inner')", arguments: [id + "-2"])
                    }
                }
                return true
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Bool in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1").result())
            #expect(try await orderNotes(store) == ["o1": "outer", "o1-2": "second inner"])
            // The rolled-back savepoint's event went with it.
            #expect(try await store.outboxEvents(status: nil, limit: 10).isEmpty)
        }
    }

    @Test func sessionOutsideATransactionIsAClearError() async throws {
        try await withOrdersApp { (app: EddaApp, _: SQLiteStore) async throws in
            let misuse = Activity("misuse", retry: .noRetry) { (ctx) -> String in
                do {
                    _ = try ctx.session
                    return "no error"
                } catch let error as EngineError {
                    return "\(error.code): \(error.message)"
                }
            }
            let workflow = Workflow("misuse") { (ctx) -> String in try await misuse(ctx) }
            let message = try await app.start(workflow).result()
            #expect(message.hasPrefix("noTransaction: ctx.session is only available inside a ctx.transaction { } body"))
        }
    }

    /// Another backend's typed overload (`EddaPostgres`'s, say) used with a SQLite store.
    @Test(arguments: ["blocking", "async", "whole body"])
    func anotherBackendsTransactionWorkFailsTheStepTerminally(kind: String) async throws {
        try await withOrdersApp { (app: EddaApp, _: SQLiteStore) async throws in
            let mode: TransactionMode = kind == "whole body" ? .wholeBody : .atCommit
            let misuse = Activity("misuse", transaction: mode) { (ctx) -> Int in
                switch kind {
                case "blocking": try ctx.addTransactionBody { (_: NotADatabase) in }
                case "async": try await ctx.addTransactionBody { (_: NotADatabase) async throws in }
                default: break
                }
                return 1
            }
            let workflow = Workflow("misuse") { (ctx) -> Int in try await misuse(ctx) }
            let error = try await #require(throws: WorkflowFailedError.self) { try await app.start(workflow, instanceID: "m").result() }
            let expected = [
                "blocking": "asked for a NotADatabase", "async": "runs blocking work only",
                "whole body": "cannot run an activity's whole body inside its transaction",
            ]
            #expect(error.error.message.contains(expected[kind]!), "\(error.error.message)")
            #expect(try await app.history(of: "m").map(\.kind) == [.activityFailed])
        }
    }

    @Test func afterCommitRunsOnceTheWritesAreVisibleAndNeverForAFailedAttempt() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let calls = Mutex<[String]>([])
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, ?)", arguments: [id, "attempt \(ctx.attempt)"])
                }
                try ctx.afterCommit {
                    let committed = (try? await store.writer.read { db in try String.fetchOne(db, sql: "SELECT note FROM orders") }) ?? nil
                    calls.withLock { $0.append("after commit of attempt \(ctx.attempt), row: \(committed ?? "none")") }
                }
                if ctx.attempt == 1 { throw FlakyNetwork() }
                return ctx.attempt
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1").result() == 2)
            #expect(calls.withLock { $0 } == ["after commit of attempt 2, row: attempt 2"])
        }
    }

    @Test func otherWorkflowsProgressWhileOneActivityWaitsOnTheNetwork() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let (gate, open) = AsyncStream<Void>.makeStream()
            let slow = Activity("slow_call") { (ctx, id: String) -> String in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'slow')", arguments: [id])
                }
                for await _ in gate { break }   // a "network call" that takes until the test says so
                return "slow done"
            }
            let fast = Activity("fast") { (ctx, id: String, index: Int) -> Int in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id, note) VALUES (?, 'fast')", arguments: ["\(id)-\(index)"])
                }
                return index
            }
            let slowWorkflow = Workflow("slow") { (ctx, id: String) -> String in try await slow(ctx, id) }
            let fastWorkflow = Workflow("fast") { (ctx, id: String) -> Int in
                var total = 0
                for index in 1...3 { total += try await fast(ctx, id, index) }
                return total
            }
            let slowHandle = try await app.start(slowWorkflow, "slow-order", instanceID: "slow")
            for index in 1...5 {
                #expect(try await app.start(fastWorkflow, "fast\(index)").result() == 6)
            }
            // Fifteen transactional steps committed while the slow activity still waits.
            let notes = try await orderNotes(store)
            #expect(notes.values.filter { $0 == "fast" }.count == 15)
            #expect(notes["slow-order"] == nil)
            #expect(try await slowHandle.status() == .running)

            open.yield()
            #expect(try await slowHandle.result() == "slow done")
            #expect(try await orderNotes(store)["slow-order"] == "slow")
        }
    }

    @Test func oneFailingBodyDoesNotFailTheWritesSharingItsCommit() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place", retry: .noRetry) { (ctx, id: String) -> String in
                try ctx.transaction { db in
                    try db.execute(sql: "INSERT INTO orders (id) VALUES (?)", arguments: [id])
                    if id == "poison" { throw TerminalError("rejected") }
                }
                return id
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> String in try await place(ctx, id) }
            let ids = (1...20).map { "o\($0)" } + ["poison"]
            let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                for id in ids {
                    let handle = try await app.start(workflow, id, instanceID: id)
                    group.addTask { (id, (try? await handle.result()) != nil) }
                }
                return try await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(outcomes.filter(\.value).count == 20)
            #expect(outcomes["poison"] == false)
            let stored = try await orderNotes(store)
            #expect(Set(stored.keys) == Set(ids.dropLast()))
        }
    }

    @Test func aCompensationUndoesItsActivitysWritesTransactionally() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let cancel = Compensation("cancel_order") { (ctx, placed: String, id: String) in
                try ctx.transaction { db in
                    try db.execute(sql: "DELETE FROM orders WHERE id = ?", arguments: [placed])
                    try ctx.enqueue(CloudEvent(type: "order.cancelled", source: "/orders", subject: placed))
                }
            }
            let place = Activity("place") { (ctx, id: String) -> String in
                try ctx.transaction { db in try db.execute(sql: "INSERT INTO orders (id) VALUES (?)", arguments: [id]) }
                return id
            }.onFailure(cancel)
            let charge = Activity("charge", retry: .noRetry) { (ctx) -> Int in throw TerminalError("card declined") }
            let workflow = Workflow("order") { (ctx, id: String) -> Int in
                _ = try await place(ctx, id)
                return try await charge(ctx)
            }
            _ = try await #require(throws: WorkflowFailedError.self) { try await app.start(workflow, "o1", instanceID: "i1").result() }
            #expect(try await orderNotes(store).isEmpty)
            #expect(try await store.outboxEvents(status: nil, limit: 10).map(\.event.type) == ["order.cancelled"])
            #expect(try await app.history(of: "i1").map(\.kind) == [.activityCompleted, .activityFailed, .compensationCompleted])
        }
    }

    @Test func enqueuedEventsAreWrittenOnlyWithTheRecord() async throws {
        try await withOrdersApp { (app: EddaApp, store: SQLiteStore) async throws in
            let place = Activity("place") { (ctx, id: String) -> Int in
                try ctx.enqueue(try CloudEvent(type: "order.placed", source: "/orders", subject: id, json: ["attempt": ctx.attempt]))
                if ctx.attempt == 1 { throw FlakyNetwork() }
                try ctx.transaction { _ in
                    try ctx.enqueue(CloudEvent(type: "order.audited", source: "/audit", data: Data("ok".utf8), dataContentType: "text/plain"))
                }
                return ctx.attempt
            }
            let workflow = Workflow("place_order") { (ctx, id: String) -> Int in try await place(ctx, id) }
            #expect(try await app.start(workflow, "o1", instanceID: "i1").result() == 2)
            let events = try await store.outboxEvents(status: nil, limit: 10)
            #expect(events.map(\.event.type) == ["order.placed", "order.audited"])
            #expect(events.allSatisfy { $0.status == .pending && $0.instanceID == "i1" && $0.stepID == "place:1" })
            #expect(events.first?.event.data.map { String(decoding: $0, as: UTF8.self) } == #"{"attempt":2}"#)
            #expect(events.first?.event.dataContentType == "application/json")
            #expect(events.last?.event.dataContentType == "text/plain")
        }
    }
}

struct FlakyNetwork: Error {}
struct NotADatabase: Sendable {}

/// What a stray task's call came to.
final class StrayOutcome: Sendable {
    private let outcome = Mutex<String?>(nil)
    func set(_ text: String) { outcome.withLock { $0 = text } }
    var value: String? { outcome.withLock { $0 } }
}
