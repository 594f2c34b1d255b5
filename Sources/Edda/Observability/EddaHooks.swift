public import Foundation
import Synchronization

/// Callbacks for what workflows and activities do, for code that wants to react (a dashboard, an
/// audit log, a test). Every method has a default that does nothing: implement the ones you need.
///
/// ```swift
/// struct AuditHooks: EddaHooks {
///     func workflowFailed(_ workflow: WorkflowHookEvent, error: ErrorRecord) async {
///         await audit.record("\(workflow.workflowName) \(workflow.instanceID) failed: \(error.type)")
///     }
/// }
/// var configuration = EddaApp.Configuration()
/// configuration.hooks = [AuditHooks()]
/// ```
///
/// Hooks are called off the commit path, in order, from one task per app: a slow hook never slows
/// a step or the group commit. Events wait in a buffer of ``EddaApp/Configuration-swift.struct/hookBufferSize``
/// (10,000 by default); past it, the oldest are dropped. A hook sees what happened after it was
/// recorded (or, for `started`, as it starts); a crash may lose the events not yet delivered.
public protocol EddaHooks: Sendable {
    /// An instance was created by this app.
    func workflowStarted(_ workflow: WorkflowHookEvent) async
    func workflowCompleted(_ workflow: WorkflowHookEvent) async
    func workflowFailed(_ workflow: WorkflowHookEvent, error: ErrorRecord) async
    func workflowCancelled(_ workflow: WorkflowHookEvent) async
    /// An attempt of an activity is about to run.
    func activityStarted(_ activity: ActivityHookEvent) async
    /// An activity's result is known: recorded now, or (`fromHistory`) replayed from history.
    func activityCompleted(_ activity: ActivityHookEvent, fromHistory: Bool) async
    /// An activity failed for good (a terminal error, or its retries ran out).
    func activityFailed(_ activity: ActivityHookEvent, error: ErrorRecord) async
    /// An attempt failed and another is scheduled after `delay`.
    func activityRetrying(_ activity: ActivityHookEvent, error: ErrorRecord, delay: Duration) async
}

extension EddaHooks {
    public func workflowStarted(_ workflow: WorkflowHookEvent) async {}
    public func workflowCompleted(_ workflow: WorkflowHookEvent) async {}
    public func workflowFailed(_ workflow: WorkflowHookEvent, error: ErrorRecord) async {}
    public func workflowCancelled(_ workflow: WorkflowHookEvent) async {}
    public func activityStarted(_ activity: ActivityHookEvent) async {}
    public func activityCompleted(_ activity: ActivityHookEvent, fromHistory: Bool) async {}
    public func activityFailed(_ activity: ActivityHookEvent, error: ErrorRecord) async {}
    public func activityRetrying(_ activity: ActivityHookEvent, error: ErrorRecord, delay: Duration) async {}
}

/// Which instance a workflow hook is about.
public struct WorkflowHookEvent: Sendable, Hashable {
    public var instanceID: String
    public var workflowName: String
    /// When it happened, on the app's clock.
    public var time: Date
}

/// Which step an activity hook is about.
public struct ActivityHookEvent: Sendable, Hashable {
    public var instanceID: String
    public var workflowName: String
    public var activityName: String
    public var stepID: String
    /// The attempt (1 for the first; for `fromHistory`, the attempts it took).
    public var attempt: Int
    public var time: Date
}

/// Hands events to the hooks from one task, off the engine's path.
final class HookDispatcher: Sendable {
    enum Event: Sendable {
        case workflowStarted(WorkflowHookEvent)
        case workflowCompleted(WorkflowHookEvent)
        case workflowFailed(WorkflowHookEvent, ErrorRecord)
        case workflowCancelled(WorkflowHookEvent)
        case activityStarted(ActivityHookEvent)
        case activityCompleted(ActivityHookEvent, fromHistory: Bool)
        case activityFailed(ActivityHookEvent, ErrorRecord)
        case activityRetrying(ActivityHookEvent, ErrorRecord, Duration)
    }

    private let hooks: [any EddaHooks]
    private let bufferSize: Int
    /// The queue of the current (or next) run of the app; a stopped run's is finished and replaced.
    private let queue: Mutex<(stream: AsyncStream<Event>, continuation: AsyncStream<Event>.Continuation)>

    init(hooks: [any EddaHooks], bufferSize: Int) {
        self.hooks = hooks
        self.bufferSize = max(bufferSize, 1)
        queue = Mutex(AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(max(bufferSize, 1))))
    }

    /// Queues an event; never waits.
    func post(_ event: Event) {
        _ = queue.withLock { $0.continuation.yield(event) }
    }

    /// The events of the current run, for ``deliver(_:)``: taken before the delivering task starts,
    /// so that a ``finish()`` that comes first still ends that task.
    func currentEvents() -> AsyncStream<Event> {
        queue.withLock { $0.stream }
    }

    /// Delivers `events` until ``finish()`` (then what is queued is delivered, and it returns).
    func deliver(_ events: AsyncStream<Event>) async {
        for await event in events {
            for hook in hooks {
                switch event {
                case .workflowStarted(let workflow): await hook.workflowStarted(workflow)
                case .workflowCompleted(let workflow): await hook.workflowCompleted(workflow)
                case .workflowFailed(let workflow, let error): await hook.workflowFailed(workflow, error: error)
                case .workflowCancelled(let workflow): await hook.workflowCancelled(workflow)
                case .activityStarted(let activity): await hook.activityStarted(activity)
                case .activityCompleted(let activity, let fromHistory): await hook.activityCompleted(activity, fromHistory: fromHistory)
                case .activityFailed(let activity, let error): await hook.activityFailed(activity, error: error)
                case .activityRetrying(let activity, let error, let delay): await hook.activityRetrying(activity, error: error, delay: delay)
                }
            }
        }
    }

    /// Ends this run's delivery after what is queued; events posted from now on wait for the next run.
    func finish() {
        let next = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(bufferSize))
        let current = queue.withLock { queue in
            defer { queue = next }
            return queue.continuation
        }
        current.finish()
    }
}
