/// Reading the store: what the engine reads when it resumes an instance, and what the CLI and the
/// viewer show. Reads take no lease and never block a writer.
public protocol InstanceReader: Sendable {
    /// One instance, or `nil`; with ``WorkflowInstance/waitingFor`` filled in when it is parked on a wait.
    func instance(_ instanceID: String) async throws -> WorkflowInstance?

    /// An instance's history in append order.
    func history(of instanceID: String) async throws -> [HistoryEvent]

    /// A page of an instance's history, in append order: read in the database, so that a history
    /// of many thousand records is shown a page at a time.
    func history(of instanceID: String, matching query: HistoryQuery) async throws -> [HistoryEvent]

    /// A page of instances matching the query, newest first. A row that cannot be fully read is
    /// listed with ``WorkflowInstance/unreadable`` saying what. Pass the page's
    /// ``InstancePage/nextCursor`` as ``InstanceQuery/after`` for the next page, or a page's
    /// ``InstancePage/previousCursor`` as ``InstanceQuery/before`` for the one before it. Each
    /// parked instance comes with ``WorkflowInstance/waitingFor``; ``InstanceStatus/waiting``
    /// selects the running instances parked on a wait.
    func instances(matching query: InstanceQuery) async throws -> InstancePage

    /// How many instances have each status, among those the query's other filters match (its
    /// status, cursor and limit are ignored). Statuses with no instance are absent; a status this
    /// version does not know is counted under its stored text. ``InstanceStatus/waiting`` counts
    /// the running instances parked on a wait, which ``InstanceStatus/running`` counts too.
    func statusCounts(matching query: InstanceQuery) async throws -> [InstanceStatus: Int]

    /// Every queue declared in the store, by name, with its limits and how many of its instances are
    /// queued and running.
    func queues() async throws -> [QueueSummary]

    /// Where a ``InstanceStatus/queued`` instance stands on its queue: 1 for the next to be admitted
    /// (lowest priority number, then oldest). `nil` when it is not queued (or does not exist).
    func queuePosition(of instanceID: String) async throws -> Int?

    /// The application versions with unfinished instances, each with their counts, unversioned
    /// instances (`nil`) first, then by version. See ``EddaApp/Configuration/applicationVersion``.
    func applicationVersions() async throws -> [ApplicationVersionSummary]
}
