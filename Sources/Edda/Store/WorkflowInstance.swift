public import Foundation

/// A workflow instance as the store holds it.
public struct WorkflowInstance: Sendable {
    public var instanceID: String
    public var workflowName: String
    /// The ``EddaApp/serviceName`` of the app that created the instance.
    public var serviceName: String
    /// The status as stored: a waiting instance is ``InstanceStatus/running`` here (see
    /// ``displayStatus`` and ``waitingFor``).
    public var status: InstanceStatus
    /// The workflow's arguments as a JSON array, one element per argument.
    public var input: JSONPayload
    /// The result, once ``status`` is ``InstanceStatus/completed``.
    public var output: JSONPayload?
    /// Why the instance failed, once ``status`` is ``InstanceStatus/failed``.
    public var error: ErrorRecord?
    public var createdAt: Date
    public var updatedAt: Date
    /// The worker holding the instance's lease, if any.
    public var leaseOwner: String?
    /// When the instance may next be claimed, if not at once: the end of a wait.
    public var readyAt: Date?
    /// ``EddaApp/cancel(_:)`` was asked for (of this instance or an ancestor) and the instance has
    /// not stopped yet; finishing clears it.
    public var cancelRequested: Bool
    /// The instance that started this one as a child workflow
    /// (``WorkflowContext/startChild(_:_:childID:on:priority:partitionKey:)``), if any.
    public var parentInstanceID: String?
    /// Which run of the instance this is: 1, then one more with each continue-as-new.
    public var runNumber: Int
    /// What of the stored row could not be read, if anything: an unknown status (written by a newer
    /// version of Edda, or by hand), an unreadable error column. The row is shown as far as it can
    /// be — a list is never blocked by one bad row — and no worker claims an unknown status.
    public var unreadable: String?
    /// The trace context it was started in (``NewInstance/traceContext``).
    public var traceContext: [String: String]?
    /// When a worker last took the instance (claimed it, or created it leased): its latest run
    /// began then, so history recorded before it was replayed by that run, not executed.
    public var lastClaimedAt: Date?
    /// What the instance waits for, when it is parked on a wait (running or compensating, holding no
    /// lease): filled in by ``InstanceReader``, derived from the store's wait rows and the time the
    /// instance is resumed at (see ``InstanceWait``). `nil` for an instance that is executing,
    /// ready, or finished.
    public var waitingFor: InstanceWait?
    /// The ``Queue`` it was started on, by name, or `nil`.
    public var queue: String?
    /// Its priority on ``queue``: lower numbers are admitted first. 0 when on no queue.
    public var priority: Int
    /// Its partition key on a partitioned ``queue``, or `nil`.
    public var partitionKey: String?
    /// When the instance is cancelled unless it has finished: the earlier of its workflow deadline
    /// and its run's, on the database's clock. `nil` when it has no timeout (nor a parent with one).
    /// See ``Workflow/init(_:timeout:runTimeout:validate:_:)``.
    public var deadline: Date?
    /// The deadline of the whole instance, across continue-as-new: its start plus its workflow
    /// timeout, or its parent's deadline when that is earlier.
    public var workflowDeadline: Date?
    /// The workflow timeout it was started with, if any.
    public var workflowTimeout: Duration?
    /// The run timeout it was started with, if any: each run's deadline is its start plus this.
    public var runTimeout: Duration?
    /// While the instance is ``InstanceStatus/queued``: when it is taken out of line and cancelled
    /// unless a worker has admitted it by then (its start's `queueTimeout:`), on the database's clock.
    /// Admission clears it, so on an instance that runs it is set only when it was taken out of line.
    public var queueDeadline: Date?
    /// The queue timeout it was started with, if any (counted again when a retry queues it again).
    public var queueTimeout: Duration?
    /// The instance this one was forked from (``EddaClient/fork(_:fromStep:instanceID:)``), if any.
    public var forkedFrom: String?
    /// The step of ``forkedFrom`` this one ran again from: its history is the original's before it.
    public var forkedFromStep: String?
    /// The ``EddaApp/Configuration/applicationVersion`` of the app that started it, or `nil` when that
    /// app was unversioned. Its child workflows, continue-as-new runs and retries keep it; a fork
    /// takes the forking app's. Only workers of this version, or that declare it compatible
    /// (``EddaApp/Configuration/compatibleVersions``), and unversioned workers claim it.
    public var applicationVersion: String?

    /// What cancels the instance at ``deadline``, named as its cancellation will record it.
    public var deadlineExceeded: DeadlineExceeded? {
        guard let deadline else { return nil }
        if let workflowDeadline, workflowDeadline <= deadline { return workflowDeadlineExceeded }
        return DeadlineExceeded(kind: .runTimeout, timeout: runTimeout, deadline: deadline)
    }

    /// The status to show: ``InstanceStatus/waiting`` for a running instance parked on a wait, else
    /// ``status``.
    public var displayStatus: InstanceStatus {
        status == .running && waitingFor != nil ? .waiting : status
    }

    public init(
        instanceID: String, workflowName: String, serviceName: String, status: InstanceStatus, input: JSONPayload,
        output: JSONPayload? = nil, error: ErrorRecord? = nil, createdAt: Date, updatedAt: Date,
        leaseOwner: String? = nil, readyAt: Date? = nil, cancelRequested: Bool = false, parentInstanceID: String? = nil,
        runNumber: Int = 1, traceContext: [String: String]? = nil, lastClaimedAt: Date? = nil, queue: String? = nil, priority: Int = 0,
        partitionKey: String? = nil
    ) {
        self.partitionKey = partitionKey
        self.queue = queue
        self.priority = priority
        self.traceContext = traceContext
        self.lastClaimedAt = lastClaimedAt
        self.parentInstanceID = parentInstanceID
        self.runNumber = runNumber
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.serviceName = serviceName
        self.status = status
        self.input = input
        self.output = output
        self.error = error
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.leaseOwner = leaseOwner
        self.readyAt = readyAt
        self.cancelRequested = cancelRequested
    }
}

/// What ``WorkflowStore/createInstance(_:leasedTo:)`` is asked to insert.
@_spi(EddaStores) public struct NewInstance: Sendable {
    public var instanceID: String
    public var workflowName: String
    public var serviceName: String
    public var input: JSONPayload
    /// The parent instance, for a child workflow; its outcome is reported to the parent when it finishes.
    public var parentInstanceID: String?
    /// The trace context of the code that started the instance (the keys a tracer propagates, such
    /// as `traceparent`), so that every run links back to it.
    public var traceContext: [String: String]?
    /// The queue it is started on, if any: it is inserted ``InstanceStatus/queued`` and never leased at creation.
    public var placement: QueuePlacement?
    /// Its timeouts, which the store turns into deadlines on its own clock (see ``InstanceTimeouts``).
    /// A child inherits its parent's deadline when that is earlier, whatever its own.
    public var timeouts: InstanceTimeouts
    /// The application version it is recorded with (``WorkflowInstance/applicationVersion``): the
    /// starting app's, or its parent's for a child workflow. `nil`: unversioned.
    public var applicationVersion: String?

    public init(
        instanceID: String, workflowName: String, serviceName: String, input: JSONPayload, parentInstanceID: String? = nil,
        traceContext: [String: String]? = nil, placement: QueuePlacement? = nil, timeouts: InstanceTimeouts = .none,
        applicationVersion: String? = nil
    ) {
        self.applicationVersion = applicationVersion
        self.placement = placement
        self.timeouts = timeouts
        self.parentInstanceID = parentInstanceID
        self.traceContext = traceContext
        self.instanceID = instanceID
        self.workflowName = workflowName
        self.serviceName = serviceName
        self.input = input
    }
}

/// How a workflow instance ended.
@_spi(EddaStores) public enum InstanceOutcome: Sendable {
    case completed(JSONPayload)
    case failed(ErrorRecord)
    /// Stopped by a cancellation; the record says why.
    case cancelled(ErrorRecord)
}

/// Filters and a page position for ``InstanceReader/instances(matching:)``.
public struct InstanceQuery: Sendable {
    /// Only instances with this status. ``InstanceStatus/waiting`` selects the running instances
    /// parked on a wait; ``InstanceStatus/running`` every running instance, waiting or not.
    public var status: InstanceStatus?
    /// Only the child workflows of this instance (``WorkflowInstance/parentInstanceID``).
    public var parentInstanceID: String?
    /// Only the forks of this instance (``WorkflowInstance/forkedFrom``).
    public var forkedFrom: String?
    public var workflowName: String?
    /// Only instances started by this service (``WorkflowInstance/serviceName``): several services
    /// may share one database.
    public var serviceName: String?
    /// Leaves out instances of these workflows: `excludingWorkflowNames: registered` lists the
    /// instances a deployment cannot run.
    public var excludingWorkflowNames: Set<String>
    /// At most this many, newest first. Defaults to 100.
    public var limit: Int
    /// Where the page starts: the previous page's ``InstancePage/nextCursor``; `nil` for the first page.
    public var after: InstanceCursor?
    /// Where the page ends, for paging back: the instances newer than this cursor, the `limit`
    /// nearest to it (still listed newest first). Pass a page's ``InstancePage/previousCursor``.
    /// Ignored when ``after`` is given.
    public var before: InstanceCursor?
    /// Only instances with an argument (an object) whose value at this key — a dotted path such as
    /// `email` or `address.city` — is ``inputValue`` (compared as text). Not indexed: each unfinished
    /// and finished instance's input is read, so use it with another filter on large stores.
    public var inputKey: String?
    public var inputValue: String?

    /// Whether `key` can be an ``inputKey``: a key, or a dotted path of keys, each a letter or `_`
    /// followed by letters, digits or `_` (the same search on every backend).
    public static func isValidInputKey(_ key: String) -> Bool {
        key.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { segment in
            guard let first = segment.first, !first.isNumber else { return false }
            return segment.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
        }
    }

    /// ``applicationVersions`` apart: the named versions, sorted, and whether unversioned instances are selected.
    package var versionFilter: (versions: [String], unversioned: Bool)? {
        applicationVersions.map { set in (set.compactMap { $0 }.sorted(), set.contains(nil)) }
    }
    /// Only instances started on this ``Queue`` (by name).
    public var queue: String?
    /// Only instances of these application versions (``WorkflowInstance/applicationVersion``); a
    /// `nil` element selects unversioned instances. `nil` (the default): any version.
    ///
    /// ```swift
    /// let old = try await store.instances(matching: InstanceQuery(status: .running, applicationVersions: ["2026.11.3"]))
    /// ```
    public var applicationVersions: Set<String?>?
    /// Only instances created at or after this time.
    public var createdFrom: Date?
    /// Only instances created before this time.
    public var createdBefore: Date?

    public init(
        status: InstanceStatus? = nil, workflowName: String? = nil, serviceName: String? = nil, excludingWorkflowNames: Set<String> = [],
        limit: Int = 100, after: InstanceCursor? = nil, createdFrom: Date? = nil, createdBefore: Date? = nil,
        applicationVersions: Set<String?>? = nil
    ) {
        self.applicationVersions = applicationVersions
        self.status = status
        self.workflowName = workflowName
        self.serviceName = serviceName
        self.excludingWorkflowNames = excludingWorkflowNames
        self.limit = limit
        self.after = after
        self.createdFrom = createdFrom
        self.createdBefore = createdBefore
    }
}

/// One page of instances, newest first.
public struct InstancePage: Sendable {
    public var instances: [WorkflowInstance]
    /// Where the next page starts, or `nil` when this page is the last.
    public var nextCursor: InstanceCursor?
    /// Where the page before this one ends (pass it as ``InstanceQuery/before``), or `nil` when this
    /// page is the first.
    public var previousCursor: InstanceCursor?

    public init(instances: [WorkflowInstance], nextCursor: InstanceCursor?, previousCursor: InstanceCursor? = nil) {
        self.instances = instances
        self.nextCursor = nextCursor
        self.previousCursor = previousCursor
    }

    /// The page of `limit` a store read from `rows` — at most `limit + 1` instances in the query's
    /// order, newest first after ``InstanceQuery/after`` (or from the top), oldest first before
    /// ``InstanceQuery/before`` — with its cursors. Shared by the backends.
    package init(rows: [WorkflowInstance], limit: Int, query: InstanceQuery) {
        let more = rows.count > limit
        if query.after == nil, let before = query.before {
            let page = Array(rows.prefix(limit).reversed())
            // Older than this page: the instance of `before` itself, at least.
            self.init(
                instances: page, nextCursor: page.last.map(InstanceCursor.init(after:)) ?? before,
                previousCursor: more ? page.first.map(InstanceCursor.init(after:)) : nil
            )
        } else {
            let page = Array(rows.prefix(limit))
            self.init(
                instances: page, nextCursor: more ? page.last.map(InstanceCursor.init(after:)) : nil,
                previousCursor: query.after.flatMap { after in page.first.map(InstanceCursor.init(after:)) ?? after }
            )
        }
    }
}

/// A position in the newest-first order of instances: the last instance of a page. Stable while
/// instances are added, since new ones sort before it.
public struct InstanceCursor: Sendable, Hashable, CustomStringConvertible, LosslessStringConvertible {
    /// The instance's creation time, in milliseconds since 1970.
    public var createdAtMilliseconds: Int64
    public var instanceID: String

    public init(createdAtMilliseconds: Int64, instanceID: String) {
        self.createdAtMilliseconds = createdAtMilliseconds
        self.instanceID = instanceID
    }

    /// The cursor after `instance`.
    public init(after instance: WorkflowInstance) {
        self.init(createdAtMilliseconds: instance.createdAt.millisecondsSince1970, instanceID: instance.instanceID)
    }

    /// `"<milliseconds>:<instance ID>"`, for URLs and the CLI.
    public var description: String { "\(createdAtMilliseconds):\(instanceID)" }

    /// Parses ``description``; `nil` for any other text.
    public init?(_ text: String) {
        guard let colon = text.firstIndex(of: ":"), let milliseconds = Int64(text[..<colon]) else { return nil }
        let id = String(text[text.index(after: colon)...])
        guard !id.isEmpty else { return nil }
        self.init(createdAtMilliseconds: milliseconds, instanceID: id)
    }
}
