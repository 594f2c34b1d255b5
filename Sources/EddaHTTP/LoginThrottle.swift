import Edda
import Foundation
import Synchronization

/// Limits sign-in attempts per client: after ``maxFailures`` wrong tokens within ``window``, the
/// client's next attempts get 429 (even with the right token) until the oldest failure is older
/// than the window. A right token clears the client's count.
///
/// Clients are told apart by address when the request context knows it (Hummingbird's
/// `RemoteAddressRequestContext`, as ``EddaHTTP/server(logger:onListening:)``'s does); otherwise all share one
/// budget.
final class LoginThrottle: Sendable {
    let maxFailures: Int
    let window: TimeInterval
    /// At most this many clients are remembered; the one whose last failure is oldest is forgotten first.
    static let maxClients = 10_000
    private let clock: any WorkflowClock
    private let failures = Mutex<[String: [Date]]>([:])

    init(maxFailures: Int = 5, window: TimeInterval = 60, clock: any WorkflowClock = SystemClock()) {
        self.maxFailures = maxFailures
        self.window = window
        self.clock = clock
    }

    /// `nil` if `client` may try now, else how many seconds until it may.
    func wait(for client: String) -> Int? {
        let now = clock.now()
        return failures.withLock { failures -> Int? in
            let recent = (failures[client] ?? []).filter { now.timeIntervalSince($0) < window }
            failures[client] = recent.isEmpty ? nil : recent
            guard recent.count >= maxFailures, let oldest = recent.first else { return nil }
            return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
        }
    }

    func recordFailure(of client: String) {
        let now = clock.now()
        failures.withLock { failures in
            if failures[client] == nil, failures.count >= Self.maxClients,
                let stalest = failures.min(by: { ($0.value.last ?? .distantPast) < ($1.value.last ?? .distantPast) })
            {
                failures[stalest.key] = nil
            }
            failures[client, default: []].append(now)
        }
    }

    func recordSuccess(of client: String) {
        _ = failures.withLock { $0.removeValue(forKey: client) }
    }
}
