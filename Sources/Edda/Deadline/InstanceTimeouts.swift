/// The timeouts an instance is started with (``NewInstance/timeouts``): a workflow's own
/// (``Workflow/init(_:timeout:runTimeout:validate:_:)``), or a start's, which overrides them one by one.
///
/// The store turns them into deadlines on its own clock when it inserts the instance: the workflow
/// deadline is the insert's time plus ``workflow`` — or the parent's deadline, for a child, when that is
/// earlier — and the instance's deadline is the earlier of that and the insert's time plus ``run``. A
/// continue-as-new moves the run's deadline to its own time plus ``run``; the workflow deadline stays.
@_spi(EddaStores) public struct InstanceTimeouts: Sendable, Hashable {
    /// From the start of the instance to its end, across continue-as-new.
    public var workflow: Duration?
    /// One run of a continue-as-new chain.
    public var run: Duration?

    public init(workflow: Duration? = nil, run: Duration? = nil) {
        self.workflow = workflow
        self.run = run
    }

    /// No timeout at all.
    public static let none = InstanceTimeouts()

    /// These, with those `other` sets in their place.
    func overridden(by other: InstanceTimeouts) -> InstanceTimeouts {
        InstanceTimeouts(workflow: other.workflow ?? workflow, run: other.run ?? run)
    }

    /// `nil` when both are positive (or absent); otherwise what is wrong, for a message.
    var problem: String? {
        for (name, value) in [("timeout", workflow), ("runTimeout", run)] {
            if let value, value <= .zero { return "\(name) must be longer than zero; it is \(value)" }
            if let value, value < .milliseconds(1) { return "\(name) must be at least 1 ms; it is \(value)" }
        }
        return nil
    }
}
