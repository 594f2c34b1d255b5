/// A worker's right to run one workflow instance, and the fence on every write it makes.
///
/// A store hands out a lease when a worker claims an instance (``WorkQueue/claim(_:)``) or creates
/// one for itself (``WorkflowStore/createInstance(_:leasedTo:)``). Each claim bumps the instance's
/// ``token``, so a worker that lost its lease — paused by the OS, cut off by the network — holds a
/// token that no longer matches: every write it tries is refused with
/// ``StoreError/Code-swift.struct/leaseLost`` and changes nothing.
public struct Lease: Sendable, Hashable, CustomStringConvertible {
    /// The instance the lease is on.
    public var instanceID: String
    /// The worker holding it (``EddaApp/Configuration-swift.struct/workerID``).
    public var owner: String
    /// The fencing token: grows with every claim of the instance.
    public var token: Int64

    /// A lease as a store hands it out. Whether and when it lapses is the store's business
    /// (``WorkQueue/leasesLapse``), not the lease's: the worker keeps its own deadline.
    public init(instanceID: String, owner: String, token: Int64) {
        self.instanceID = instanceID
        self.owner = owner
        self.token = token
    }

    public var description: String { "Lease(\(instanceID), owner: \(owner), token: \(token))" }
}

/// What a worker asks for when it takes leases: who it is, and how long a lease lasts between renewals.
@_spi(EddaStores) public struct LeaseRequest: Sendable, Hashable {
    /// The worker's ID.
    public var owner: String
    /// How long a lease lasts unless renewed. A store whose leases never lapse (SQLite) ignores it.
    public var duration: Duration

    public init(owner: String, duration: Duration) {
        self.owner = owner
        self.duration = duration
    }
}
