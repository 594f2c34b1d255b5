public import Foundation

/// Why an instance was cancelled by its deadline: which timeout passed, how long it was, and when.
///
/// An instance whose deadline passes is cancelled as ``EddaApp/cancel(_:)`` cancels it — it stops at
/// its next step boundary, its compensations run — and ends ``InstanceStatus/cancelled``, with this
/// recorded as the reason. ``WorkflowHandle/result()`` throws ``WorkflowCancelledError`` carrying it:
///
/// ```swift
/// do {
///     _ = try await handle.result()
/// } catch let error as WorkflowCancelledError {
///     if let deadline = error.deadlineExceeded {
///         print(deadline)   // deadline exceeded: workflow timeout 30 s passed at 2026-12-05T18:30:00.000Z
///     }
/// }
/// ```
public struct DeadlineExceeded: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Which deadline passed.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        fileprivate let rawValue: String

        /// The workflow timeout: from the start of the instance to its end, across continue-as-new.
        public static let workflowTimeout = Kind(rawValue: "workflow_timeout")
        /// The run timeout: one run of a continue-as-new chain.
        public static let runTimeout = Kind(rawValue: "run_timeout")
        /// The deadline of the parent workflow, which a child inherits when it is earlier than its own.
        public static let inherited = Kind(rawValue: "inherited")
        /// The queue timeout: the instance was still ``InstanceStatus/queued`` on its ``Queue`` when it
        /// passed, so it was taken out of line unadmitted.
        public static let queueTimeout = Kind(rawValue: "queue_timeout")

        public var description: String { rawValue }
    }

    /// Which deadline passed.
    public var kind: Kind
    /// The timeout that set the deadline (`nil` for one inherited from the parent).
    public var timeout: Duration?
    /// When the deadline passed, on the database's clock.
    public var deadline: Date
    /// The parent whose deadline was inherited (``Kind-swift.struct/inherited``), if known.
    public var parentInstanceID: String?

    /// Describes a deadline that passed: the engine makes these; tests and tools may too.
    ///
    /// - Parameters:
    ///   - kind: Which deadline.
    ///   - timeout: The timeout that set it; `nil` for one inherited from the parent.
    ///   - deadline: When it passed, on the database's clock.
    ///   - parentInstanceID: The parent whose deadline it was, for ``Kind-swift.struct/inherited``.
    public init(kind: Kind, timeout: Duration?, deadline: Date, parentInstanceID: String? = nil) {
        self.kind = kind
        self.timeout = timeout
        self.deadline = deadline
        self.parentInstanceID = parentInstanceID
    }

    /// `deadline exceeded: workflow timeout 30 s passed at 2026-12-05T18:30:00.000Z`.
    public var description: String {
        let at = deadline.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        switch kind {
        case .inherited:
            return "deadline exceeded: the deadline inherited from parent instance \(parentInstanceID ?? "?") passed at \(at)"
        case .queueTimeout:
            return "deadline exceeded: still queued when its queue timeout \(timeout.map(Self.text(of:)) ?? "?") passed at \(at)"
        default:
            let name = kind == .runTimeout ? "run timeout" : "workflow timeout"
            return "deadline exceeded: \(name) \(timeout.map(Self.text(of:)) ?? "?") passed at \(at)"
        }
    }

    /// `30 s`, `50 ms`, `2 min`: a timeout as people write it.
    static func text(of duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        if milliseconds % 60_000 == 0, milliseconds >= 60_000 { return "\(milliseconds / 60_000) min" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        return "\(milliseconds) ms"
    }

    enum CodingKeys: String, CodingKey {
        case kind
        case timeout = "timeout_ms"
        case deadline = "deadline_ms"
        case parentInstanceID = "parent_instance_id"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        kind = Kind(rawValue: try container.decode(String.self, forKey: .kind))
        timeout = try container.decodeIfPresent(Int64.self, forKey: .timeout).map { .milliseconds($0) }
        deadline = Date(storedMilliseconds: try container.decode(Int64.self, forKey: .deadline))
        parentInstanceID = try container.decodeIfPresent(String.self, forKey: .parentInstanceID)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind.rawValue, forKey: .kind)
        try container.encodeIfPresent(timeout?.milliseconds, forKey: .timeout)
        try container.encode(deadline.millisecondsSince1970, forKey: .deadline)
        try container.encodeIfPresent(parentInstanceID, forKey: .parentInstanceID)
    }
}
