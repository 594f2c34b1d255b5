/// The leases a worker holds and what it knows of their time, as a pure value: when each was last
/// granted or renewed, until when it surely holds, which renewals came back lost, and which leases
/// would lapse before the next renewal could extend them.
///
/// The ``Worker`` reads the monotonic clock and performs the renewals; every decision about a
/// lease's time is made here, so each is tested with instants a test chooses (`LeaseBookTests`).
/// `Run` is whatever the worker keeps per lease (its ``ActiveRun``).
struct LeaseBook<Run: Sendable>: Sendable {
    typealias Instant = ContinuousClock.Instant

    struct Entry: Sendable {
        var lease: Lease
        var run: Run
        /// When the store last granted or renewed the lease, by this process's clock: taken before
        /// the request went out, so the lease surely lasts `leaseDuration` from then.
        var grantedAt: Instant
        /// A renewal found the lease lost, or it may have lapsed: a run started under it later
        /// (after a store-failure backoff) stops at once too.
        var lost = false
    }

    let leaseDuration: Duration
    let renewalInterval: Duration
    /// Whether the store's leases lapse unless renewed (``WorkQueue/leasesLapse``).
    let leasesLapse: Bool
    private(set) var entries: [String: Entry] = [:]

    init(leaseDuration: Duration, renewalInterval: Duration, leasesLapse: Bool) {
        self.leaseDuration = leaseDuration
        self.renewalInterval = renewalInterval
        self.leasesLapse = leasesLapse
    }

    /// Until when a lease granted at `grantedAt` surely holds: the time the lapse check would stop its
    /// run (one renewal interval before it lapses). `nil` when the store's leases never lapse (SQLite).
    func validUntil(_ lease: Lease, grantedAt: Instant) -> Instant? {
        guard leasesLapse else { return nil }
        return grantedAt + leaseDuration - renewalInterval
    }

    func entry(_ instanceID: String) -> Entry? {
        entries[instanceID]
    }

    /// A lease was granted (claimed, or created leased here) at `grantedAt`, for `run`.
    mutating func hold(_ lease: Lease, run: Run, grantedAt: Instant) {
        entries[lease.instanceID] = Entry(lease: lease, run: run, grantedAt: grantedAt)
    }

    /// The instance's next run uses `run`, under `lease` (the same, or with its token moved on by a
    /// continue-as-new). Returns until when the lease holds, and whether it is already lost.
    mutating func nextRun(_ instanceID: String, run: Run, lease: Lease) -> (validUntil: Instant?, lost: Bool)? {
        guard var entry = entries[instanceID] else { return nil }
        entry.run = run
        entry.lease = lease
        entries[instanceID] = entry
        return (validUntil(lease, grantedAt: entry.grantedAt), entry.lost)
    }

    /// The instance's run ended: its lease is no longer held.
    mutating func forget(_ instanceID: String) {
        entries[instanceID] = nil
    }

    /// The leases to renew now.
    var leases: [Lease] {
        entries.values.map(\.lease)
    }

    /// A renewal of `sent`, sent at `sentAt`, came back with `lost`. Returns the runs whose lease now
    /// holds until a later time, and the runs whose lease is lost. A lease replaced meanwhile (a newer
    /// token on the same instance) is neither: the answer was about the old one.
    mutating func renewed(_ sent: [Lease], lost: Set<String>, sentAt: Instant) -> (renewed: [(Run, Instant?)], lost: [Run]) {
        var renewed: [(Run, Instant?)] = []
        var lostRuns: [Run] = []
        for lease in sent {
            guard var entry = entries[lease.instanceID], entry.lease.token == lease.token else { continue }
            if lost.contains(lease.instanceID) {
                entry.lost = true
                lostRuns.append(entry.run)
            } else {
                entry.grantedAt = sentAt
                renewed.append((entry.run, validUntil(entry.lease, grantedAt: sentAt)))
            }
            entries[lease.instanceID] = entry
        }
        return (renewed, lostRuns)
    }

    /// The runs whose lease would lapse before the next renewal could extend it — renewals have been
    /// failing — marked lost. Leases that never lapse are kept.
    mutating func lapsing(now: Instant) -> [Run] {
        var runs: [Run] = []
        for (id, entry) in entries where !entry.lost {
            guard let until = validUntil(entry.lease, grantedAt: entry.grantedAt), until <= now else { continue }
            entries[id]?.lost = true
            runs.append(entry.run)
        }
        return runs
    }
}
