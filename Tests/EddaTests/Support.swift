import Edda
import EddaTestSupport
import EddaTesting
import Synchronization

/// Counts how often each activity body ran, across tasks.
final class ExecutionLog: Sendable {
    private let entries = Mutex<[String]>([])

    func record(_ name: String) {
        entries.withLock { $0.append(name) }
    }

    var all: [String] { entries.withLock { $0 } }

    func count(_ name: String) -> Int {
        entries.withLock { $0.filter { $0 == name }.count }
    }
}

struct User: Codable, Sendable, Equatable {
    var userID: String
    var email: String
}

struct SignupResult: Codable, Sendable, Equatable {
    var userID: String
    var status: String
}

/// A recorded step, for building histories by hand.
func recorded<T: Encodable>(
    _ instanceID: String, _ stepID: String, position: Int?, name: String, result: T
) throws -> HistoryEvent {
    HistoryEvent(
        instanceID: instanceID, stepID: stepID, position: position, name: name, kind: .activityCompleted,
        payload: try JSONPayload.encode(result)
    )
}

extension Backend {
    /// `withTestApp` on a fresh store of this backend (see ``Backend/withStore(_:)``).
    func withTestApp<Result: Sendable>(
        configuration: EddaApp.Configuration = .testing, _ body: @escaping @Sendable (EddaApp) async throws -> Result
    ) async throws -> Result {
        try await withStore { store in try await EddaTesting.withTestApp(store: store, configuration: configuration, body) }
    }
}
