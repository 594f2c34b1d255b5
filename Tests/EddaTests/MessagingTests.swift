import Edda
import EddaTestSupport
import EddaTesting
import Foundation
import Testing

struct Payment: Codable, Sendable, Equatable {
    var orderID: String
    var amount: Int
}

/// Events (`ctx.waitForEvent`, `app.sendEvent`) and channels (broadcast, competing, direct).
@Suite("Events and channels", .timeLimit(.minutes(1)))
struct MessagingTests {
    let checkout = Workflow("checkout") { (ctx, order: String) -> String in
        do {
            let paid = try await ctx.waitForEvent(type: "payment.completed", as: Payment.self, timeout: .seconds(30))
            return "\(paid.data.orderID) paid \(paid.data.amount) via \(paid.source) [\(paid.extensions["channel"] ?? "-")]"
        } catch is WaitTimeoutError {
            return "\(order) expired"
        }
    }

    func paymentEvent(_ order: String, amount: Int) throws -> CloudEvent {
        var event = try CloudEvent(type: "payment.completed", source: "/payments", subject: order, json: Payment(orderID: order, amount: amount))
        event.extensions["channel"] = "card"
        return event
    }

    @Test(arguments: Backend.allCases)
    func anEventWakesTheInstanceWaitingForItsTypeAndIsRecorded(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                let handle = try await app.start(checkout, "o-1", instanceID: "o-1")
                try await waitUntil { try await self.isWaiting(store, "o-1") }
                let receivers = try await app.sendEvent(try paymentEvent("o-1", amount: 42))
                #expect(receivers == ["o-1"])
                #expect(try await handle.result() == "o-1 paid 42 via /payments [card]")
            }
            let history = try await store.history(of: "o-1")
            #expect(history.map(\.kind) == [.messageReceived])
            #expect(history.first?.stepID == "edda.event:1")
            #expect(try await store.instance("o-1")?.status == .completed)
        }
    }

    @Test(arguments: Backend.allCases)
    func anEventNobodyWaitsForIsDroppedButOneSentToAnInstanceIsKept(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                #expect(try await app.sendEvent(try paymentEvent("nobody", amount: 1)).isEmpty, "nobody waits: dropped")
                // Sent to one instance before it waits (right after start): kept for it, not for the other.
                let first = try await app.start(checkout, "o-2", instanceID: "o-2")
                let second = try await app.start(checkout, "o-3", instanceID: "o-3")
                try await app.sendEvent(try paymentEvent("o-2", amount: 7), to: "o-2")
                #expect(try await first.result() == "o-2 paid 7 via /payments [card]")
                try await waitUntil { try await self.isWaiting(store, "o-3") }
                #expect(try await store.instance("o-3")?.status == .running, "the event routed to o-2 did not reach o-3")
                try await app.sendEvent(try paymentEvent("o-3", amount: 9), to: "o-3")
                #expect(try await second.result() == "o-3 paid 9 via /payments [card]")
                await #expect(throws: EngineError.self) { try await app.sendEvent(try paymentEvent("x", amount: 1), to: "o-2") }
                await #expect(throws: EngineError.self) { try await app.sendEvent(try paymentEvent("x", amount: 1), to: "unknown") }
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aTimeoutIsATypedErrorTheWorkflowCatchesAndItIsRecorded(_ backend: Backend) async throws {
        let impatient = Workflow("impatient") { (ctx, order: String) -> String in
            do {
                _ = try await ctx.waitForEvent(type: "never", as: Payment.self, timeout: .milliseconds(30))
                return "paid"
            } catch let timeout as WaitTimeoutError {
                return "expired waiting for \(timeout.awaited)"
            }
        }
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(impatient, "o", instanceID: "t-1").result()
            }
            #expect(result == "expired waiting for never")
            #expect(try await store.history(of: "t-1").map(\.kind) == [.waitTimedOut])
        }
    }

    @Test(arguments: Backend.allCases)
    func cancellingAWaitingInstanceEndsItCancelled(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                let handle = try await app.start(checkout, "o-4", instanceID: "o-4")
                try await waitUntil { try await self.isWaiting(store, "o-4") }
                try await app.cancel("o-4")
                await #expect(throws: WorkflowCancelledError.self) { try await handle.result() }
                #expect(try await app.sendEvent(try paymentEvent("o-4", amount: 1)).isEmpty, "its wait went with it")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func competingConsumersTakeEachMessageExactlyOnce(_ backend: Backend) async throws {
        let jobs = Channel<Int>("jobs", mode: .competing)
        // Takes jobs until it takes a -1 (one per consumer, published after the jobs).
        let consumer = Workflow("consumer") { (ctx, _: Int) -> [Int] in
            var taken: [Int] = []
            while true {
                let job = try await ctx.receive(jobs, timeout: .seconds(60)).data
                if job < 0 { return taken }
                taken.append(job)
            }
        }
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                let first = try await app.start(consumer, 1, instanceID: "consumer-1")
                let second = try await app.start(consumer, 2, instanceID: "consumer-2")
                for job in 0..<100 { try await app.publish(jobs, job) }
                for _ in 0..<2 { try await app.publish(jobs, -1) }
                let (a, b) = (try await first.result(), try await second.result())
                #expect((a + b).sorted() == Array(0..<100), "every message consumed exactly once in total")
                #expect(a == a.sorted() && b == b.sorted(), "each consumer takes messages in publication order")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func broadcastSubscribersEachGetEveryMessageAndWorkflowsSendDirectly(_ backend: Backend) async throws {
        let news = Channel<String>("news", mode: .broadcast)
        let replies = Channel<String>("replies", mode: .direct)
        let listener = Workflow("listener") { (ctx, count: Int) -> [String] in
            try await ctx.subscribe(news)
            try await ctx.send(replies, to: "collector", "\(ctx.instanceID) subscribed")
            var heard: [String] = []
            for _ in 0..<count { heard.append(try await ctx.receive(news).data) }
            return heard
        }
        let collector = Workflow("collector") { (ctx, expected: Int) -> [String] in
            var got: [String] = []
            for _ in 0..<expected { got.append(try await ctx.receive(replies).data) }
            for index in 0..<5 { try await ctx.publish(news, "item \(index)") }
            return got.sorted()
        }
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                let collecting = try await app.start(collector, 2, instanceID: "collector")
                let one = try await app.start(listener, 5, instanceID: "listener-1")
                let two = try await app.start(listener, 5, instanceID: "listener-2")
                #expect(try await collecting.result() == ["listener-1 subscribed", "listener-2 subscribed"])
                let expected = (0..<5).map { "item \($0)" }
                #expect(try await one.result() == expected)
                #expect(try await two.result() == expected)
                let history = try await store.history(of: "listener-1")
                #expect(history.filter { $0.kind == .messageReceived }.count == 5)
                #expect(history.filter { $0.kind == .messagePublished }.count == 1)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func usingAChannelInAnotherModeFailsTheRunWithAClearError(_ backend: Backend) async throws {
        let asQueue = Channel<Int>("mixed", mode: .competing)
        let asBroadcast = Channel<Int>("mixed", mode: .broadcast)
        let reader = Workflow("reader") { (ctx, _: Int) -> Int in
            try await ctx.receive(asBroadcast, timeout: .seconds(5)).data
        }
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                try await app.publish(asQueue, 1)
                do {
                    _ = try await app.start(reader, 0, instanceID: "mixed-1").result()
                    Issue.record("a broadcast receive on a competing channel succeeded")
                } catch let failed as WorkflowFailedError {
                    #expect(failed.error.message.contains("Channel 'mixed' is a competing channel"), "\(failed)")
                }
                await #expect(throws: ChannelModeError.self) { try await app.publish(asBroadcast, 2) }
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aDeliveryWhileTheAppIsDownIsKeptInHistoryAndResumedOnRestart(_ backend: Backend) async throws {
        try await backend.withStore { store in
            try await withTestApp(store: store) { app in
                _ = try await app.start(checkout, "o-5", instanceID: "o-5")
                try await waitUntil { try await self.isWaiting(store, "o-5") }
            }
            // No worker runs: the sender's transaction records the event into the waiter's history.
            let sender = EddaApp(store: store, serviceName: "sender")
            #expect(try await sender.sendEvent(try paymentEvent("o-5", amount: 5)) == ["o-5"])
            #expect(try await store.history(of: "o-5").map(\.kind) == [.messageReceived])
            let restarted = try await withTestApp(store: store) { app in
                try app.register(checkout)
                return try await app.handle(for: checkout, instanceID: "o-5").result()
            }
            #expect(restarted == "o-5 paid 5 via /payments [card]")
        }
    }

    @Test(arguments: Backend.allCases)
    func aSendToAMissingInstanceIsRecordedSoReplaysTakeTheSamePath(_ backend: Backend) async throws {
        let inbox = Channel<String>("inbox", mode: .direct)
        let sender = Workflow("sender") { (ctx, _: Int) -> String in
            do {
                try await ctx.send(inbox, to: "ghost", "hello")
                return "sent"
            } catch let error as EngineError where error.code == .instanceNotFound {
                return "no ghost"
            }
        }
        try await backend.withStore { store in
            let result = try await withTestApp(store: store) { app in
                try await app.start(sender, 0, instanceID: "s-1").result()
            }
            #expect(result == "no ghost")
            let history = try await store.history(of: "s-1")
            #expect(history.map(\.kind) == [.messagePublished])
            #expect(history.first?.payload?.json.contains("refused") == true)
        }
    }

    @Test(arguments: Backend.allCases)
    func edda_prefixedTypesAndChannelsAreReserved(_ backend: Backend) async throws {
        try await backend.withTestApp { app in
            await #expect(throws: EngineError.self) { try await app.sendEvent(CloudEvent(type: "edda.child/x", source: "/forged")) }
            await #expect(throws: EngineError.self) { try await app.publish(Channel<Int>("edda.internal", mode: .broadcast), 1) }
        }
    }

    /// Released with a wait registered: not leased, and not ready.
    func isWaiting(_ store: any Store, _ id: String) async throws -> Bool {
        guard let instance = try await store.instance(id) else { return false }
        return instance.leaseOwner == nil && instance.readyAt != nil && instance.status == .running
    }
}
