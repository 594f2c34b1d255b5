public import Edda
import EddaSQLite
import Foundation
public import Logging

extension EddaApp.Configuration {
    /// A configuration for tests: retries wait 1 ms, 2 ms, 4 ms… instead of seconds, and leases,
    /// polls and store-failure backoffs are as short, so a test of retry, lease or recovery
    /// behaviour takes milliseconds.
    public static var testing: EddaApp.Configuration {
        var configuration = EddaApp.Configuration()
        configuration.defaultRetryPolicy = RetryPolicy(
            maxAttempts: 5, initialInterval: .milliseconds(1), backoffCoefficient: 2, maxInterval: .milliseconds(50), maxDuration: .seconds(10)
        )
        configuration.leaseDuration = .seconds(1)
        configuration.leaseRenewalInterval = .milliseconds(50)
        configuration.pollInterval = .milliseconds(50)
        configuration.resultPollInterval = .milliseconds(50)
        configuration.storeRetryPolicy = RetryPolicy(
            maxAttempts: .max, initialInterval: .milliseconds(1), backoffCoefficient: 2, maxInterval: .milliseconds(50), maxDuration: nil
        )
        return configuration
    }
}

/// Runs `body` with a running app on a fresh in-memory SQLite store — the real store, not a fake.
///
/// ```swift
/// @Test func signupCompletes() async throws {
///     try await withTestApp { app in
///         let result = try await app.start(userSignup, "ada@example.com", "Ada").result()
///         #expect(result.status == "active")
///     }
/// }
/// ```
///
/// - Parameters:
///   - workflows: Registered before the app runs (``EddaApp/start(_:_:instanceID:timeout:runTimeout:)`` also registers).
///   - configuration: Defaults to ``EddaApp/Configuration-swift.struct/testing``.
public func withTestApp<Result: Sendable>(
    serviceName: String = "test",
    configuration: EddaApp.Configuration = .testing,
    logger: Logger = Logger(label: "edda.test", factory: { _ in SwiftLogNoOpLogHandler() }),
    _ body: @escaping @Sendable (EddaApp) async throws -> Result
) async throws -> Result {
    try await withTestApp(store: try SQLiteStore.inMemory(logger: logger), serviceName: serviceName, configuration: configuration, logger: logger, body)
}

/// Runs `body` with a running app on `store`: for tests that prepare the store first (their own
/// tables for `ctx.transaction`, say) or read it afterwards.
public func withTestApp<Result: Sendable>(
    store: some Store,
    serviceName: String = "test",
    configuration: EddaApp.Configuration = .testing,
    logger: Logger = Logger(label: "edda.test", factory: { _ in SwiftLogNoOpLogHandler() }),
    _ body: @escaping @Sendable (EddaApp) async throws -> Result
) async throws -> Result {
    let app = EddaApp(store: store, serviceName: serviceName, configuration: configuration, logger: logger)
    return try await app.run(body)
}

/// A SQLite file in a fresh temporary directory, removed (with its WAL and lock files) after `body`.
///
/// For tests that open the same database several times — a restart, a second process.
public func withTemporaryDatabase<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edda-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    return try await body(directory.appendingPathComponent("edda.sqlite").path)
}

extension Logger {
    /// A logger that drops everything: for apps in tests that expect warnings.
    public static var quiet: Logger {
        Logger(label: "edda.test", factory: { _ in SwiftLogNoOpLogHandler() })
    }
}
