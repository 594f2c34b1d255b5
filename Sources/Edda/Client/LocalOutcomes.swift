import Foundation
import Synchronization

/// How the runs in this process ended, for the `result()` calls waiting here: the worker posts an
/// outcome the moment it is recorded, and the client's waiters hear it without reading the store.
/// Neither side calls the other; both hold this.
final class LocalOutcomes: Sendable {
    /// What a waiter hears.
    enum Message: Sendable {
        /// The instance ended here.
        case outcome(Result<InstanceOutcome, any Error>)
        /// Look at the store again: the run here stopped without an outcome, or a poll is due.
        case recheck
    }

    /// One waiter's subscription.
    struct Watch: Sendable {
        let instanceID: String
        let token: UUID
        let stream: AsyncStream<Message>
        let continuation: AsyncStream<Message>.Continuation
        /// `false` once the worker has stopped: nothing will be posted here any more.
        let registered: Bool
    }

    private struct State: Sendable {
        var waiters: [String: [UUID: AsyncStream<Message>.Continuation]] = [:]
        var stopped = false
        /// How many of this service's instances of each unregistered workflow were found at start.
        var unresumable: [String: Int] = [:]
    }

    private let state = Mutex(State())

    /// Subscribes to the outcome of `instanceID`; end it with ``end(_:)``.
    func watch(_ instanceID: String) -> Watch {
        let (stream, continuation) = AsyncStream.makeStream(of: Message.self)
        let token = UUID()
        let registered = state.withLock { state -> Bool in
            if state.stopped { return false }
            state.waiters[instanceID, default: [:]][token] = continuation
            return true
        }
        return Watch(instanceID: instanceID, token: token, stream: stream, continuation: continuation, registered: registered)
    }

    func end(_ watch: Watch) {
        state.withLock { state in
            state.waiters[watch.instanceID]?[watch.token] = nil
            if state.waiters[watch.instanceID]?.isEmpty == true {
                state.waiters[watch.instanceID] = nil
            }
        }
    }

    /// Tells the instance's waiters how it ended here, or (`nil`) that it stopped here without an
    /// outcome and they should look at the store again.
    func publish(_ instanceID: String, _ result: Result<InstanceOutcome, any Error>?) {
        let waiters = state.withLock { state in
            result == nil ? state.waiters[instanceID] ?? [:] : state.waiters.removeValue(forKey: instanceID) ?? [:]
        }
        for continuation in waiters.values {
            if let result {
                continuation.yield(.outcome(result))
                continuation.finish()
            } else {
                continuation.yield(.recheck)
            }
        }
    }

    /// The worker stopped: every waiter hears that its instance did not finish here.
    func stop() {
        let waiters = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [:] }
            return state.waiters
        }
        let stopped = EngineError(.stopped, "The app stopped before the instance finished; it resumes on the next claim.")
        for continuation in waiters.values.flatMap(\.values) {
            continuation.yield(.outcome(.failure(stopped)))
            continuation.finish()
        }
    }

    /// Notes how many instances of each unregistered workflow the worker found at start.
    func noteUnresumable(_ counts: [String: Int]) {
        state.withLock { $0.unresumable = counts }
    }

    /// Those counts, for the workflows still not registered.
    func unresumable(registry: WorkflowRegistry) -> [String: Int] {
        state.withLock { $0.unresumable }.filter { registry.registration(named: $0.key) == nil }
    }
}
