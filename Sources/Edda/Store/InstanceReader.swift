/// Reading the store: what the engine reads when it resumes an instance, and what the CLI and the
/// viewer show. Reads take no lease and never block a writer.
public protocol InstanceReader: Sendable {
    /// One instance, or `nil`.
    func instance(_ instanceID: String) async throws -> WorkflowInstance?

    /// An instance's history in append order.
    func history(of instanceID: String) async throws -> [HistoryEvent]

    /// A page of instances matching the query, newest first. Pass the page's
    /// ``InstancePage/nextCursor`` as ``InstanceQuery/after`` for the next page.
    func instances(matching query: InstanceQuery) async throws -> InstancePage

    /// How many instances have each status, among those of `workflowName` (all when `nil`).
    /// Statuses with no instance are absent.
    func statusCounts(workflowName: String?) async throws -> [InstanceStatus: Int]
}
