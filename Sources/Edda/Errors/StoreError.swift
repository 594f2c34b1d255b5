/// A failure of the store: the database is in use by another process, a migration failed, the
/// database returned an error.
///
/// Backend errors are wrapped and kept as ``cause``; `description` ends with the cause's own text
/// ("database or disk is full", "file is not a database"), so a log line or an uncaught error says
/// why. It never contains SQL arguments or payloads: the backends' errors do not print them.
public struct StoreError: EddaError {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            case databaseInUse, migrationFailed, database, corruptRecord, notWritable, leaseLost, notAnEddaDatabase, schemaTooNew
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Another process runs workers on this database; a SQLite file has one owner at a time.
        public static let databaseInUse = Code(.databaseInUse)
        /// The schema could not be brought up to date.
        public static let migrationFailed = Code(.migrationFailed)
        /// The database reported an error (disk full, I/O error, lost connection…).
        public static let database = Code(.database)
        /// A stored row holds a value Edda cannot read (an unknown status, a malformed column).
        public static let corruptRecord = Code(.corruptRecord)
        /// The database holds other tables and none of Edda's: it is another application's. Edda
        /// neither reads it nor adds its tables to it.
        public static let notAnEddaDatabase = Code(.notAnEddaDatabase)
        /// The schema was written by a newer version of Edda than this one: this version neither
        /// reads nor runs on it, and changes nothing. Use the newer version.
        public static let schemaTooNew = Code(.schemaTooNew)
        /// The store was opened read-only and was asked to write.
        public static let notWritable = Code(.notWritable)
        /// A write was refused because the writer's lease on the instance is no longer held: another
        /// worker claimed the instance, or it finished. Nothing was changed.
        public static let leaseLost = Code(.leaseLost)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}

extension StoreError {
    public var description: String {
        guard let cause else { return "StoreError: \(message)" }
        return "StoreError: \(message) Cause: \(cause)"
    }

    public var debugDescription: String {
        "StoreError(\(code)): \(message)" + (cause.map { " Cause: \(String(reflecting: $0))" } ?? "")
    }
}

