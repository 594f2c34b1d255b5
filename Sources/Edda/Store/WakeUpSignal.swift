import Synchronization

/// Wakes tasks waiting for something to happen in this process: new outbox events for a relay,
/// ready instances for a worker. A store notifies it after the commit that made the thing happen;
/// ``wait(upTo:)`` returns at the first notification or when the time is up, whichever comes first.
/// A notification that arrives while nobody waits is remembered once, so a waiter that was busy
/// does not sleep through it.
@_spi(EddaStores) public final class WakeUpSignal: Sendable {
    private enum Waiter {
        case waiting(CheckedContinuation<Void, Never>)
        /// Woken before its continuation was registered.
        case woken
    }

    private struct State {
        var pending = false
        var waiters: [Int: Waiter] = [:]
        var lastID = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Wakes every waiter, or the next one to wait.
    public func notify() {
        let continuations = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            var woken: [CheckedContinuation<Void, Never>] = []
            for (id, waiter) in state.waiters {
                if case .waiting(let continuation) = waiter {
                    woken.append(continuation)
                    state.waiters[id] = .woken
                }
            }
            if woken.isEmpty { state.pending = true }
            return woken
        }
        for continuation in continuations { continuation.resume() }
    }

    /// Returns at the next ``notify()`` (at once if one is pending), after `timeout`, or when the
    /// task is cancelled.
    public func wait(upTo timeout: Duration) async {
        let id = state.withLock { state -> Int in
            state.lastID += 1
            return state.lastID
        }
        defer { state.withLock { _ = $0.waiters.removeValue(forKey: id) } }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.wake(id)
            }
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = self.state.withLock { state -> Bool in
                            if state.pending || state.waiters[id] != nil {
                                state.pending = false
                                state.waiters[id] = .woken
                                return true
                            }
                            state.waiters[id] = .waiting(continuation)
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    self.wake(id)
                }
            }
            await group.next()
            group.cancelAll()
            self.wake(id)
        }
    }

    private func wake(_ id: Int) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            switch state.waiters[id] {
            case .waiting(let continuation):
                state.waiters[id] = .woken
                return continuation
            case .woken:
                return nil
            case nil:
                state.waiters[id] = .woken
                return nil
            }
        }
        continuation?.resume()
    }
}
