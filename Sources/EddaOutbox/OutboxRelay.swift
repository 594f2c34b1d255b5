public import AsyncHTTPClient
public import Edda
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle

/// Delivers the transactional outbox: claims events that steps committed with
/// ``Edda/ActivityContext/enqueue(_:)``, POSTs each to an HTTP endpoint as a CloudEvent, and records
/// the outcome.
///
/// ```swift
/// let store = try SQLiteStore(path: "orders.sqlite")
/// let app = EddaApp(store: store, serviceName: "orders")
/// let relay = OutboxRelay(store: store, configuration: .init(endpoint: "https://events.example/ingest"))
/// let group = ServiceGroup(services: [app, relay], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Delivery is **at least once**: an event is sent until the endpoint answers 2xx, and a relay that
/// dies between the POST and recording its outcome sends it again after
/// ``Configuration-swift.struct/claimTimeout``. Receivers deduplicate by the CloudEvent `id`.
///
/// | endpoint answers | the event becomes |
/// |---|---|
/// | 2xx | ``OutboxStatus/published`` |
/// | 4xx other than 408 and 429 | ``OutboxStatus/invalid``: resending the same event cannot help |
/// | 5xx, 408, 429, no answer | ``OutboxStatus/pending`` again, after the retry policy's backoff; ``OutboxStatus/failed`` when it is spent |
///
/// Events committed in this process wake the relay at once; otherwise it looks every
/// ``Configuration-swift.struct/pollInterval``. On graceful shutdown it finishes the batch in hand.
public final class OutboxRelay: Service, Sendable {
    public let configuration: Configuration
    /// Written on claimed rows; unique per relay instance.
    public let relayID: String
    private let store: any OutboxStore
    private let httpClient: HTTPClient
    private let logger: Logger

    /// - Parameters:
    ///   - store: The store the app commits to (`SQLiteStore`).
    ///   - httpClient: Defaults to AsyncHTTPClient's shared client.
    public init(
        store: some OutboxStore, configuration: Configuration, httpClient: HTTPClient = .shared,
        logger: Logger = Logger(label: "edda.outbox")
    ) {
        precondition(configuration.batchSize > 0, "OutboxRelay.Configuration.batchSize must be positive")
        self.store = store
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
        self.relayID = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8))"
    }

    /// Delivers until graceful shutdown or cancellation.
    public func run() async throws {
        logger.debug("outbox relay started", metadata: ["edda.outbox.endpoint": "\(configuration.endpoint)", "edda.outbox.relay": "\(relayID)"])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let claimed: Int
            do {
                claimed = try await deliverDueEvents()
            } catch {
                logger.error("outbox pass failed; trying again", metadata: ["edda.error": "\(error)"])
                claimed = 0
            }
            if claimed < configuration.batchSize {
                let interval = configuration.pollInterval
                await cancelWhenGracefulShutdown { await self.store.waitForOutboxEvents(upTo: interval) }
            }
        }
        logger.debug("outbox relay stopped", metadata: ["edda.outbox.relay": "\(relayID)"])
    }

    /// One pass: claims up to ``Configuration-swift.struct/batchSize`` due events, delivers them
    /// concurrently and records each outcome.
    ///
    /// - Returns: How many events were claimed.
    @discardableResult
    public func deliverDueEvents() async throws -> Int {
        let now = Date()
        let claim = OutboxClaim(
            relayID: relayID, limit: configuration.batchSize, now: now,
            reclaimClaimedBefore: now.addingTimeInterval(-configuration.claimTimeout.seconds),
            expireCreatedBefore: configuration.maxAge.map { now.addingTimeInterval(-$0.seconds) }
        )
        let events = try await store.claimOutboxEvents(claim)
        // Delivered in a task of its own, so cancelling the relay does not abandon a batch midway.
        try await Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for event in events {
                    group.addTask { try await self.deliver(event) }
                }
                try await group.waitForAll()
            }
        }.value
        return events.count
    }

    private func deliver(_ stored: OutboxEvent) async throws {
        let attempt = stored.attempts + 1
        var metadata: Logger.Metadata = [
            "edda.outbox.sequence": "\(stored.sequence)", "edda.event.id": "\(stored.event.id)",
            "edda.event.type": "\(stored.event.type)", "edda.attempt": "\(attempt)",
        ]
        let outcome: OutboxDelivery
        do {
            var request = try stored.event.httpRequest(to: configuration.endpoint, mode: configuration.mode)
            for header in configuration.headers { request.headers.add(name: header.name, value: header.value) }
            let response = try await httpClient.execute(request, timeout: .nanoseconds(configuration.requestTimeout.nanoseconds), logger: logger)
            // The status decides; the body is drained (to free the connection) and otherwise ignored.
            _ = try? await response.body.reduce(0) { count, chunk in count + chunk.readableBytes }
            let code = Int(response.status.code)
            metadata["edda.http.status"] = "\(code)"
            switch code {
            case 200..<300:
                outcome = .published(at: Date())
            case 408, 429:
                outcome = retryOrFail(stored, attempt: attempt, error: "HTTP \(code) \(response.status.reasonPhrase)")
            case 400..<500:
                outcome = .invalid(error: "HTTP \(code) \(response.status.reasonPhrase)")
            default:
                outcome = retryOrFail(stored, attempt: attempt, error: "HTTP \(code) \(response.status.reasonPhrase)")
            }
        } catch {
            outcome = retryOrFail(stored, attempt: attempt, error: "\(error)")
        }
        switch outcome {
        case .published: logger.debug("event published", metadata: metadata)
        case .retry: logger.debug("event delivery failed; will retry", metadata: metadata)
        case .failed, .invalid: logger.warning("event not delivered", metadata: metadata.merging(["edda.outbox.outcome": "\(outcome)"]) { $1 })
        }
        try await store.recordOutboxDelivery(sequence: stored.sequence, relayID: relayID, outcome)
    }

    private func retryOrFail(_ stored: OutboxEvent, attempt: Int, error: String) -> OutboxDelivery {
        let policy = configuration.retry
        let delay = policy.delay(afterAttempt: attempt)
        let now = Date()
        let outOfTime = policy.maxDuration.map { now.addingTimeInterval(delay.seconds).timeIntervalSince(stored.createdAt) > $0.seconds } ?? false
        if attempt >= policy.maxAttempts || outOfTime {
            return .failed(error: error)
        }
        return .retry(at: now.addingTimeInterval(delay.seconds), error: error)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
