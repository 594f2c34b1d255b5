import Synchronization

/// Runs an operation in a task of its own that the caller can stop waiting for: when the operation
/// outlives a limit, the caller is failed at once and the task is cancelled and left behind — an
/// operation that ignores cancellation runs on, and whatever it returns is discarded.
///
/// For work that may never answer: an activity attempt past its timeout, a PostgreSQL query lost
/// with its connection.
package struct AbandonableTask<T: Sendable>: Sendable {
    private let outcome = FirstOutcome<T>()
    private let work: Task<Void, Never>

    /// Starts `operation` now, in a task that inherits the caller's task-local values.
    package init(_ operation: @escaping @Sendable () async throws -> T) {
        let outcome = self.outcome
        work = Task {
            do {
                outcome.resume(with: .success(try await operation()))
            } catch {
                outcome.resume(with: .failure(error))
            }
        }
    }

    /// Fails the waiting caller with `error` and cancels the operation, unless it has already
    /// answered. Returns whether this call decided the outcome.
    @discardableResult
    package func abandon(with error: any Error) -> Bool {
        guard outcome.resume(with: .failure(error)) else { return false }
        work.cancel()
        return true
    }

    /// Runs `action` once the outcome is decided, however (at once if it is).
    package func onOutcome(_ action: @escaping @Sendable () -> Void) {
        outcome.onResume(action)
    }

    /// The operation's result, or the error it was abandoned with. Cancelling the caller abandons
    /// the operation with `CancellationError`.
    package var value: T {
        get async throws {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { outcome.arm($0) }
            } onCancel: {
                abandon(with: CancellationError())
            }
        }
    }
}

/// Resumes a continuation once, with whichever comes first: the result, a timeout, a cancellation.
private final class FirstOutcome<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        /// The result, when it came before the continuation was armed.
        var early: Result<T, any Error>?
        var done = false
        var onResume: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            guard state.done else {
                state.continuation = continuation
                return nil
            }
            return state.early
        }
        if let early { continuation.resume(with: early) }
    }

    func onResume(_ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard !state.done else { return true }
            state.onResume = action
            return false
        }
        if runNow { action() }
    }

    /// Returns whether this call decided the outcome (`false`: something else came first).
    @discardableResult
    func resume(with result: Result<T, any Error>) -> Bool {
        let taken = state.withLock { state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?)? in
            guard !state.done else { return nil }
            state.done = true
            let continuation = state.continuation
            if continuation == nil { state.early = result }
            let action = state.onResume
            state.continuation = nil
            state.onResume = nil
            return (continuation, action)
        }
        guard let (continuation, action) = taken else { return false }
        continuation?.resume(with: result)
        action?()
        return true
    }
}
