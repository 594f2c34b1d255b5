import Edda
import Logging
import PostgresNIO
import Synchronization

/// Wake-ups between workers through LISTEN/NOTIFY, kept off the write path: a write only flags what
/// happened; a notifier task sends the flags in one `pg_notify` round trip per batch, and a listener
/// turns other processes' notifications into local wake-ups.
final class Notifier: Sendable {
    enum Event: String, Sendable {
        /// An instance may be ready to claim.
        case ready
        /// An instance may have finished.
        case finished
        /// A step committed outbox events for the relays.
        case outbox
    }

    private let pending = Mutex<Set<Event>>([])
    private let signal = WakeUpSignal()

    func post(_ event: Event) {
        let first = pending.withLock { $0.insert(event).inserted }
        if first { signal.notify() }
    }

    /// Sends pending events until cancelled.
    func sendLoop(store: PostgresStore) async {
        while !Task.isCancelled {
            await signal.wait(upTo: .seconds(3600))
            let events = pending.withLock { events -> Set<Event> in
                defer { events = [] }
                return events
            }
            guard !events.isEmpty else { continue }
            let sql = "SELECT " + events.map { "pg_notify($1, '\($0.rawValue)')" }.sorted().joined(separator: ", ")
            var binds = PostgresBindings()
            binds.append(store.tables.channel)
            do {
                try await store.client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: store.logger)
            } catch {
                // Other workers still poll; nothing is lost but latency.
                store.logger.debug("could not notify other workers", metadata: ["edda.error": "\(ServerError(error))"])
            }
        }
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
                            switch Notifier.Event(rawValue: notification.payload) {
                            case .ready: wakeUps.notify()
                            case .finished: outcomes.notify()
                            case .outbox: outboxSignal.notify()
                            case nil: break
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
