import Foundation

extension RunStateMachine {
    /// Why a run stops without an outcome of its own.
    enum Stop: Sendable, CustomStringConvertible {
        /// The worker is shutting down: the lease is released and the instance resumes on the next claim.
        case shutdown
        /// Another worker may own the instance now: nothing more is written.
        case leaseLost
        /// The run waits longer than it may stay in memory: released, ready at `until` (or a wake-up).
        case waiting(until: Date)
        /// The workflow asked for its next run, with this input.
        case continueAsNew(JSONPayload)
        /// A store read or write failed: the worker runs the instance again after a backoff.
        case storeFailure(any Error)

        /// Which stop wins when several arrive: a lost lease over everything, then shutdown, then a
        /// store failure, then the run's own requests (the first of which sticks, but the earliest wait).
        var rank: Int {
            switch self {
            case .leaseLost: 4
            case .shutdown: 3
            case .storeFailure: 2
            case .waiting, .continueAsNew: 1
            }
        }

        var description: String {
            switch self {
            case .shutdown: "shutdown"
            case .leaseLost: "lease lost"
            case .waiting(let until): "waiting until \(until)"
            case .continueAsNew: "continue as new"
            case .storeFailure(let error): "store failure: \(error)"
            }
        }
    }
}
