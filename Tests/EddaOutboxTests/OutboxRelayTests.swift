import Edda
import EddaOutbox
import EddaSQLite
import EddaTesting
import EddaTestSupport
import Foundation
import Logging
import Testing

/// The outbox relay against a real HTTP receiver on 127.0.0.1.
@Suite("Outbox relay", .timeLimit(.minutes(1)))
struct OutboxRelayTests {
    static let emit = Activity("emit") { (ctx, type: String, subject: String) -> String in
        var event = try CloudEvent(type: type, source: "/tests", subject: subject, json: ["subject": subject])
        event.extensions = ["tenant": "acme"]   // kept in the outbox and sent
        try ctx.enqueue(event)
        return event.id
    }
    static let emitting = Workflow("emitting") { (ctx, types: [String]) -> [String] in
        var ids: [String] = []
        for type in types { ids.append(try await emit(ctx, type, "s-\(type)")) }
        return ids
    }

    static func relayConfiguration(_ endpoint: String) -> OutboxRelay.Configuration {
        OutboxRelay.Configuration(
            endpoint: endpoint,
            retry: RetryPolicy(maxAttempts: 3, initialInterval: .milliseconds(5), backoffCoefficient: 2, maxInterval: .milliseconds(20), maxDuration: nil),
            pollInterval: .milliseconds(20), requestTimeout: .seconds(5)
        )
    }

    /// Commits one event per type through a workflow, runs a relay until `until` holds, and returns
    /// the committed event IDs with the outbox as stored.
    func deliver(
        _ types: [String], receiver: EventReceiver, configure: @escaping @Sendable (inout OutboxRelay.Configuration) -> Void = { _ in },
        until done: @escaping @Sendable ([OutboxEvent]) -> Bool
    ) async throws -> (ids: [String], outbox: [OutboxEvent]) {
        let store = try SQLiteStore.inMemory()
        let ids = try await withTestApp(store: store) { app in try await app.start(Self.emitting, types).result() }
        let outbox = try await receiver.serve { (endpoint: String) async throws in
            var configuration = Self.relayConfiguration(endpoint)
            configure(&configuration)
            let relay = OutboxRelay(store: store, configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let running = Task { try await relay.run() }
            defer { running.cancel() }
            return try await waitFor(store, until: done)
        }
        return (ids, outbox)
    }

    @Test func deliversInBinaryMode() async throws {
        let receiver = EventReceiver()
        let (ids, outbox) = try await deliver(["order.placed"], receiver: receiver) { $0.allSatisfy { $0.status == .published } }
        #expect(outbox.count == 1)
        #expect(outbox.first?.attempts == 1)
        #expect(outbox.first?.publishedAt != nil)
        let request = try #require(receiver.requests.first)
        #expect(request.headers["ce-specversion"] == "1.0")
        #expect(request.headers["ce-id"] == ids.first)
        #expect(request.headers["ce-type"] == "order.placed")
        #expect(request.headers["ce-source"] == "/tests")
        #expect(request.headers["ce-subject"] == "s-order.placed")
        #expect(request.headers["ce-time"]?.hasPrefix("20") == true)
        #expect(request.headers["ce-tenant"] == "acme", "an extension attribute is a ce- header")
        #expect(outbox.first?.event.extensions == ["tenant": "acme"])
        #expect(request.headers["content-type"] == "application/json")
        #expect(String(decoding: request.body, as: UTF8.self) == #"{"subject":"s-order.placed"}"#)
    }

    @Test func binaryHeaderValuesArePercentEncoded() async throws {
        let receiver = EventReceiver()
        _ = try await deliver(["order placed \u{e9} 100%"], receiver: receiver) { $0.allSatisfy { $0.status == .published } }
        let request = try #require(receiver.requests.first)
        #expect(request.headers["ce-type"] == "order%20placed%20%C3%A9%20100%25")
    }

    @Test func deliversInStructuredMode() async throws {
        let receiver = EventReceiver()
        let (ids, _) = try await deliver(["order.placed"], receiver: receiver, configure: { $0.mode = .structured }) {
            $0.allSatisfy { $0.status == .published }
        }
        let request = try #require(receiver.requests.first)
        #expect(request.headers["content-type"] == "application/cloudevents+json; charset=utf-8")
        let document = try #require(try JSONSerialization.jsonObject(with: request.body) as? [String: Any])
        #expect(document["specversion"] as? String == "1.0")
        #expect(document["id"] as? String == ids.first)
        #expect(document["type"] as? String == "order.placed")
        #expect(document["datacontenttype"] as? String == "application/json")
        #expect((document["data"] as? [String: String]) == ["subject": "s-order.placed"])
        #expect(document["tenant"] as? String == "acme", "an extension attribute is a top-level member")
    }

    @Test func retriesOn5xxMarksInvalidOn4xxAndFailsWhenAttemptsAreSpent() async throws {
        let receiver = EventReceiver { request, previous in
            switch request.headers["ce-type"] {
            case "flaky": previous < 2 ? 503 : 200
            case "rejected": 400
            case "down": 500
            case "throttled": previous < 1 ? 429 : 204
            default: 200
            }
        }
        let (_, outbox) = try await deliver(["flaky", "rejected", "down", "throttled"], receiver: receiver) { events in
            events.allSatisfy { ![.pending, .processing].contains($0.status) }
        }
        let byType = Dictionary(uniqueKeysWithValues: outbox.map { ($0.event.type, $0) })
        #expect(byType["flaky"]?.status == .published)
        #expect(byType["flaky"]?.attempts == 3)
        #expect(byType["rejected"]?.status == .invalid)
        #expect(byType["rejected"]?.attempts == 1)
        #expect(byType["rejected"]?.lastError?.contains("400") == true)
        #expect(byType["down"]?.status == .failed)
        #expect(byType["down"]?.attempts == 3)
        #expect(byType["down"]?.lastError?.contains("500") == true)
        #expect(byType["throttled"]?.status == .published)
        #expect(byType["throttled"]?.attempts == 2)
        let counts = Dictionary(grouping: receiver.requests, by: { $0.headers["ce-type"] ?? "?" }).mapValues(\.count)
        #expect(counts == ["flaky": 3, "rejected": 1, "down": 3, "throttled": 2])
    }

    @Test func anUnreachableEndpointIsRetriedThenFailed() async throws {
        let store = try SQLiteStore.inMemory()
        _ = try await withTestApp(store: store) { app in try await app.start(Self.emitting, ["lost"]).result() }
        // Nothing listens on port 9 of 127.0.0.1 here: the connection is refused. AsyncHTTPClient
        // keeps trying to connect until the request's deadline, so keep that short.
        var configuration = Self.relayConfiguration("http://127.0.0.1:9/events")
        configuration.requestTimeout = .milliseconds(100)
        let relay = OutboxRelay(store: store, configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let running = Task { try await relay.run() }
        defer { running.cancel() }
        let outbox = try await waitFor(store) { $0.allSatisfy { $0.status == .failed } }
        #expect(outbox.first?.attempts == 3)
        #expect(outbox.first?.lastError?.isEmpty == false)
    }

    @Test func eventsOlderThanMaxAgeExpireUnsent() async throws {
        let receiver = EventReceiver()
        let store = try SQLiteStore.inMemory()
        _ = try await withTestApp(store: store) { app in try await app.start(Self.emitting, ["stale"]).result() }
        try await Task.sleep(for: .milliseconds(5))
        try await receiver.serve { (endpoint: String) async throws in
            var configuration = Self.relayConfiguration(endpoint)
            configuration.maxAge = .milliseconds(1)
            let relay = OutboxRelay(store: store, configuration: configuration)
            #expect(try await relay.deliverDueEvents() == 0)
        }
        #expect(try await store.outboxEvents(status: nil, limit: 10).map(\.status) == [.expired])
        #expect(receiver.requests.isEmpty)
    }

    @Test func aClaimLeftByADeadRelayIsTakenBackAndDelivered() async throws {
        let receiver = EventReceiver()
        let store = try SQLiteStore.inMemory()
        _ = try await withTestApp(store: store) { app in try await app.start(Self.emitting, ["orphaned"]).result() }
        // A relay claims the event and dies before recording anything.
        let now = Date()
        let claimed = try await store.claimOutboxEvents(
            OutboxClaim(relayID: "dead-relay", limit: 10, now: now, reclaimClaimedBefore: now.addingTimeInterval(-60), expireCreatedBefore: nil)
        )
        #expect(claimed.map(\.status) == [.processing])
        try await receiver.serve { (endpoint: String) async throws in
            // Within the claim timeout the live claim is respected.
            var patient = Self.relayConfiguration(endpoint)
            patient.claimTimeout = .seconds(60)
            #expect(try await OutboxRelay(store: store, configuration: patient).deliverDueEvents() == 0)
            // Past it, the claim is taken back. (Two relays, not one and a sleep: a loaded machine
            // must not turn "within" into "past".)
            try await Task.sleep(for: .milliseconds(5))
            var reclaiming = Self.relayConfiguration(endpoint)
            reclaiming.claimTimeout = .milliseconds(1)
            #expect(try await OutboxRelay(store: store, configuration: reclaiming).deliverDueEvents() == 1)
            // The dead relay's late report changes nothing: it no longer holds the claim.
            try await store.recordOutboxDelivery(sequence: claimed[0].sequence, relayID: "dead-relay", .invalid(error: "late"))
        }
        let stored = try await store.outboxEvents(status: nil, limit: 10)
        #expect(stored.map(\.status) == [.published])
        #expect(receiver.requests.count == 1)
    }
}

/// Polls the outbox until `done` holds (every 10 ms, for at most 20 s).
func waitFor(_ store: SQLiteStore, until done: @Sendable ([OutboxEvent]) -> Bool) async throws -> [OutboxEvent] {
    let deadline = ContinuousClock.now + .seconds(20)
    while true {
        let events = try await store.outboxEvents(status: nil, limit: 1000)
        if !events.isEmpty && done(events) { return events }
        guard ContinuousClock.now < deadline else {
            Issue.record("outbox never reached the expected state: \(events.map { "\($0.event.type)=\($0.status.rawValue)/\($0.attempts)" })")
            return events
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}
