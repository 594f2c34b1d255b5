import Synchronization

/// Wakes tasks waiting for particular instances to finish: `result()` of an instance that runs in
/// another process. A store notifies it with the IDs of the instances that finished — here, or in
/// another process when the store can tell (PostgreSQL's LISTEN/NOTIFY carries the IDs) — so that a
/// finish wakes only its own waiters, not every `result()` in the process.
///
/// ```swift
/// let watch = store.outcomes.watch(instanceID)   // first: a finish from now on is not missed
/// defer { watch.end() }
/// while try await store.instance(instanceID)?.status.isFinished != true {
///     await watch.wait(upTo: .seconds(1))
/// }
/// ```
@_spi(EddaStores) public final class OutcomeSignal: Sendable {
    private struct State {
        var watches: [String: [Int: WakeUpSignal]] = [:]
        var lastID = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Starts watching `instanceID`. A notification for it that arrives while nobody waits on the
    /// watch is remembered until its next ``Watch/wait(upTo:)``. Call ``Watch/end()`` when done.
    public func watch(_ instanceID: String) -> Watch {
        let signal = WakeUpSignal()
        let id = state.withLock { state -> Int in
            state.lastID += 1
            state.watches[instanceID, default: [:]][state.lastID] = signal
            return state.lastID
        }
        return Watch(owner: self, instanceID: instanceID, id: id, signal: signal)
    }

    /// These instances may have finished: wakes their watches.
    public func notify(_ instanceIDs: some Sequence<String>) {
        let signals = state.withLock { state in instanceIDs.flatMap { state.watches[$0]?.values.map { $0 } ?? [] } }
        for signal in signals { signal.notify() }
    }

    /// Some instances may have finished, which ones unknown: wakes every watch.
    public func notifyAll() {
        let signals = state.withLock { state in state.watches.values.flatMap(\.values) }
        for signal in signals { signal.notify() }
    }

    /// Whether anyone watches any instance: a store may skip reading which finished when nobody does.
    public var isWatched: Bool {
        state.withLock { !$0.watches.isEmpty }
    }

    /// Whether anyone watches `instanceID`.
    public func isWatched(_ instanceID: String) -> Bool {
        state.withLock { $0.watches[instanceID] != nil }
    }

    fileprivate func end(_ instanceID: String, _ id: Int) {
        state.withLock { state in
            state.watches[instanceID]?[id] = nil
            if state.watches[instanceID]?.isEmpty == true { state.watches[instanceID] = nil }
        }
    }

    /// One watcher's interest in one instance; see ``OutcomeSignal/watch(_:)``.
    public struct Watch: Sendable {
        fileprivate let owner: OutcomeSignal
        /// The watched instance.
        public let instanceID: String
        fileprivate let id: Int
        fileprivate let signal: WakeUpSignal

        /// Returns when the instance may have finished, or after `timeout`.
        public func wait(upTo timeout: Duration) async {
            await signal.wait(upTo: timeout)
        }

        /// Stops watching.
        public func end() {
            owner.end(instanceID, id)
        }
    }
}
