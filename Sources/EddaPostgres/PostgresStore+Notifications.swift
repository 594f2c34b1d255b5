@_spi(EddaStores) import Edda
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Wake-ups between workers through LISTEN/NOTIFY, kept off the write path: a write only flags what
/// happened; a notifier task sends the flags in one `pg_notify` round trip per batch, and a listener
/// turns other processes' notifications into local wake-ups. (Completions recorded by the write
/// batch are announced in its own statement, with the same payload: see `WriteBatchStatement`.)
///
/// Payloads carry names and IDs only, never data: `ready`, `outbox`, and `finished` followed by the
/// JSON array of the finished instances' IDs (split across notifications to stay under the server's
/// 8,000-byte limit; a bare `finished` means "some instances, which unknown").
final class Notifier: Sendable {
    enum Event: Sendable, Hashable {
        /// An instance may be ready to claim.
        case ready
        /// This instance finished.
        case finished(String)
        /// A step committed outbox events for the relays.
        case outbox
        /// An instance was asked to cancel: workers running it stop it now, not at their next renewal.
        case cancel
    }

    private struct Pending {
        var ready = false
        var outbox = false
        var cancel = false
        var finished: [String] = []
        var isEmpty: Bool { !ready && !outbox && !cancel && finished.isEmpty }
    }

    /// Stays under PostgreSQL's 8,000-byte payload limit with room to spare.
    static let payloadLimit = 7_900

    private let pending = Mutex(Pending())
    private let signal = WakeUpSignal()

    func post(_ event: Event) {
        let first = pending.withLock { pending -> Bool in
            let wasEmpty = pending.isEmpty
            switch event {
            case .ready: pending.ready = true
            case .outbox: pending.outbox = true
            case .finished(let id): pending.finished.append(id)
            case .cancel: pending.cancel = true
            }
            return wasEmpty
        }
        if first { signal.notify() }
    }

    /// The payloads for one batch of events.
    static func payloads(ready: Bool, outbox: Bool, finished: [String], cancel: Bool = false) -> [String] {
        var payloads: [String] = []
        if ready { payloads.append("ready") }
        if outbox { payloads.append("outbox") }
        if cancel { payloads.append("cancel") }
        var batch: [String] = []
        var size = 0
        func flush() {
            guard !batch.isEmpty else { return }
            payloads.append("finished " + String(decoding: (try? JSONEncoder().encode(batch)) ?? Data("[]".utf8), as: UTF8.self))
            batch = []
            size = 0
        }
        for id in finished {
            // JSON may escape an ID's characters up to 6 bytes each; count the worst case.
            let cost = id.utf8.count * 6 + 3
            if cost > payloadLimit - 16 {
                payloads.append("finished")   // too long to name: wake every waiter
                continue
            }
            if size + cost > payloadLimit - 16 { flush() }
            batch.append(id)
            size += cost
        }
        flush()
        return payloads
    }

    /// Reads a payload sent by ``payloads(ready:outbox:finished:)``.
    static func events(in payload: String) -> (ready: Bool, outbox: Bool, finished: [String]?, cancel: Bool)? {
        switch payload {
        case "ready": return (true, false, [], false)
        case "outbox": return (false, true, [], false)
        case "cancel": return (false, false, [], true)
        case "finished": return (false, false, nil, false)
        default:
            guard payload.hasPrefix("finished "),
                  let ids = try? JSONDecoder().decode([String].self, from: Data(payload.dropFirst("finished ".count).utf8))
            else { return nil }
            return (false, false, ids, false)
        }
    }

    /// Sends pending events until cancelled.
    func sendLoop(store: PostgresStore) async {
        while !Task.isCancelled {
            await signal.wait(upTo: .seconds(3600))
            await sendPending(store: store)
        }
    }

    /// Sends what is pending now, in one statement.
    func sendPending(store: PostgresStore) async {
        let batch = pending.withLock { pending -> Pending in
            defer { pending = Pending() }
            return pending
        }
        guard !batch.isEmpty else { return }
        let payloads = Self.payloads(ready: batch.ready, outbox: batch.outbox, finished: batch.finished, cancel: batch.cancel)
        var binds = PostgresBindings()
        binds.append(store.tables.channel)
        for payload in payloads { binds.append(payload) }
        let sql = "SELECT " + payloads.indices.map { "pg_notify($1, $\($0 + 2))" }.joined(separator: ", ")
        do {
            let query = PostgresQuery(unsafeSQL: sql, binds: binds)
            _ = try await store.watchdog.run("notify other workers") { try await store.client.query(query, logger: store.logger) }
        } catch {
            // Other workers still poll; nothing is lost but latency.
            store.logger.debug("could not notify other workers", metadata: ["edda.error": "\(ServerError(error))"])
        }
    }
}

extension PostgresStore {
    /// Sends now the notifications this store has queued for other workers (work made ready, a
    /// cancellation). They are sent off the write path in the background; a short-lived process —
    /// a CLI command — calls this before it stops, so that workers hear at once rather than at
    /// their next poll.
    public func flushNotifications() async {
        await notifier.sendPending(store: self)
    }
}

extension PostgresStore {
    /// Listens for other processes' notifications until cancelled, reconnecting after a failure.
    func listenLoop() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: tables.channel) { notifications in
                        failures = 0
                        for try await notification in notifications {
                            // Finished instances (this process's own among them) matter only to a
                            // result() waiting here for another process's instance.
                            if notification.payload.hasPrefix("finished"), !outcomes.isWatched { continue }
                            guard let events = Notifier.events(in: notification.payload) else { continue }
                            if events.ready { wakeUps.notify() }
                            if events.outbox { outboxSignal.notify() }
                            if events.cancel { cancellations.notify() }
                            if let finished = events.finished {
                                outcomes.notify(finished)
                            } else {
                                outcomes.notifyAll()
                            }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                failures += 1
                logger.debug("listening for other workers failed; retrying", metadata: ["edda.error": "\(ServerError(error))"])
                try? await Task.sleep(for: .milliseconds(min(100 * (1 << min(failures, 6)), 5_000)))
            }
        }
    }
}
