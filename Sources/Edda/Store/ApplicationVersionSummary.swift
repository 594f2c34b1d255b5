public import Foundation

/// One application version's unfinished instances: ``InstanceReader/applicationVersions()``.
///
/// A version is listed while it has instances queued, running (waiting included) or compensating;
/// once it has none, no worker of that version is needed any more, and it is no longer listed.
///
/// ```swift
/// for summary in try await app.applicationVersions() {
///     print(summary.version ?? "unversioned", summary.unfinished)
/// }
/// ```
public struct ApplicationVersionSummary: Sendable, Hashable {
    /// The version (``WorkflowInstance/applicationVersion``), or `nil` for unversioned instances.
    public var version: String?
    /// How many of its instances are queued, running or compensating.
    public var unfinished: Int
    /// Of those, how many are ``InstanceStatus/queued``.
    public var queued: Int
    /// When the oldest of them was started.
    public var oldestCreatedAt: Date

    public init(version: String?, unfinished: Int, queued: Int, oldestCreatedAt: Date) {
        self.version = version
        self.unfinished = unfinished
        self.queued = queued
        self.oldestCreatedAt = oldestCreatedAt
    }
}
