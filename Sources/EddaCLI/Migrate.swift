import ArgumentParser
import Edda
import EddaPostgres
import EddaSQLite
import Foundation
import GRDB

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a database's schema up to date (an app does this itself when it opens the database).",
        discussion: """
            It says what it did: created the schema (on an empty SQLite file or a PostgreSQL schema without Edda's \
            tables), migrated an older one, or found it up to date. A schema written by a newer version of Edda is \
            refused, unchanged. It never adds Edda's tables to another application's database, nor creates a SQLite file.
            """
    )

    @OptionGroup var store: StoreOptions

    @Flag(help: #"Print what was done as one JSON object: {"database": …, "schema": "created", "migrated" or "up_to_date"}."#)
    var json = false

    /// The schema as found before migrating.
    enum Found {
        case none, older, current
    }

    func run() async throws {
        let found = try await schema()
        if found != .current {
            if store.isPostgres {
                let postgres = try PostgresStore(url: store.location, logger: StoreOptions.logger)
                try await StoreOptions.withRunning(postgres) { _ in }
            } else {
                let location = store.location
                _ = try await Progress.during("migrating") { try SQLiteStore(path: location, logger: StoreOptions.logger) }
            }
        }
        let (key, text) =
            switch found {
            case .none: ("created", "created Edda's schema")
            case .older: ("migrated", "migrated the schema to this version")
            case .current: ("up_to_date", "schema already up to date; nothing was changed")
            }
        json ? JSONOutput.print(["database": store.displayName, "schema": key]) : out("\(store.displayName): \(text)")
    }

    /// Opens the database without migrating, as the reading commands do, and tells what it holds.
    /// A newer schema, another application's database or a missing file throws.
    func schema() async throws -> Found {
        do {
            try await store.withStore(writable: false) { _ in }
            return .current
        } catch let error as StoreError where error.code == .schemaTooNew {
            throw CLIError(
                "\(store.displayName) has a newer schema than this edda (\(EddaCommand.version)) knows: a newer version of Edda wrote it. "
                    + "Nothing was changed; use that version's edda or app."
            )
        } catch let error as StoreError where error.code == .migrationFailed {
            if store.isPostgres { return error.message.contains("holds no Edda tables") ? .none : .older }
            return try Self.hasTables(store.location) ? .older : .none
        }
    }

    /// Whether a SQLite file holds any table (read-only).
    static func hasTables(_ path: String) throws -> Bool {
        var configuration = GRDB.Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%')") ?? false
        }
    }
}
