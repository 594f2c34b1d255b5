import ArgumentParser
import Edda
import EddaPostgres
import EddaSQLite
import Foundation
import Logging

@main
struct EddaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edda",
        abstract: "See and steer Edda workflow instances on a SQLite file or a PostgreSQL database.",
        discussion: """
            Reading (list, show, export, outbox) never migrates nor writes, and works next to running workers. \
            cancel, retry, fork and send-event act on the database directly: they need no workflow code. \
            start needs it (to decode and validate the input), so it asks a running app's HTTP API (EddaHTTP).
            """,
        version: "edda \(EddaCommand.version)",
        subcommands: [
            List.self, Show.self, Export.self, Queues.self, Versions.self, Outbox.self, Start.self, Cancel.self, Retry.self, Fork.self,
            SendEvent.self, Schedules.self, Serve.self, Migrate.self,
            Backup.self, Prune.self,
        ]
    )
}

extension EddaCommand {
    /// This build's version, printed by `edda --version`.
    static let version = "0.1.0"
}

/// Every store the CLI opens: the workflow roles and the outbox.
typealias CLIStore = any Store & OutboxStore

struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The database: a SQLite file, or a postgres:// URL.", discussion: "Defaults to $EDDA_DATABASE, then edda.sqlite.")
    )
    var database: String?

    var location: String { database ?? ProcessInfo.processInfo.environment["EDDA_DATABASE"] ?? "edda.sqlite" }
    var isPostgres: Bool { location.hasPrefix("postgres://") || location.hasPrefix("postgresql://") }

    /// The database for messages: a URL without its password.
    var displayName: String {
        guard isPostgres, var components = URLComponents(string: location), components.password != nil else { return location }
        components.password = "•••"
        return components.string ?? location
    }

    /// Opens the database, runs `body` with it, and closes it. Nothing is migrated: a database whose
    /// schema is not the one this CLI knows is refused unchanged (`edda migrate` updates it). With
    /// `writable: false` the store refuses every write as well (SQLite opens the file read-only).
    func withStore<Result: Sendable>(writable: Bool, _ body: @escaping @Sendable (CLIStore) async throws -> Result) async throws -> Result {
        if isPostgres {
            var configuration = try PostgresStore.Configuration(url: location)
            configuration.migratesSchema = false
            configuration.maximumConnections = 4
            configuration.startupTimeout = .seconds(10)
            configuration.applicationName = configuration.applicationName ?? "edda-cli"
            return try await Self.withRunning(try PostgresStore(configuration: configuration, logger: Self.logger), body)
        }
        guard FileManager.default.fileExists(atPath: location) else {
            throw CLIError("No database at \(location). Pass --database with the path your app uses (or a postgres:// URL).")
        }
        // Check the schema read-only first: opening read-write would migrate.
        let reader = try SQLiteStore(readingAt: location, logger: Self.logger)
        return try await body(writable ? try SQLiteStore(path: location, logger: Self.logger) : reader)
    }

    /// Runs a PostgreSQL store (its pool is a service) around `body`.
    static func withRunning<Result: Sendable>(_ store: PostgresStore, _ body: @escaping @Sendable (CLIStore) async throws -> Result) async throws -> Result {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            defer { group.cancelAll() }
            try await Progress.during("connecting") { try await store.ready() }
            let result = try await body(store)
            // What the command changed wakes the workers now, not at their next poll.
            await store.flushNotifications()
            return result
        }
    }

    /// An app on the database for the commands that act. It runs no worker: the app's own processes
    /// run the instances.
    func withApp<Result: Sendable>(_ body: @escaping @Sendable (EddaApp) async throws -> Result) async throws -> Result {
        try await withStore(writable: true) { store in
            try await body(EddaApp(store: store, serviceName: "edda-cli", logger: Self.logger))
        }
    }

    static let logger: Logger = {
        var logger = Logger(label: "edda.cli")
        logger.logLevel = .error
        return logger
    }()
}

/// A usage error with its message as the whole output.
struct CLIError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
