@_spi(EddaStores) import Edda
import Foundation
import GRDB

extension SQLiteStore {
    /// A ``StoreError`` that says what failed, why (SQLite's own reason, as its cause) and what to do
    /// about it: the text a log line or an uncaught error shows.
    static func failure(_ what: String, path: String?, _ error: any Error) -> StoreError {
        let advice = advice(for: error, path: path)
        return StoreError(.database, advice.isEmpty ? what : "\(what) \(advice)", cause: error)
    }

    /// What to do about an SQLite error, by its result code; empty when there is nothing to add.
    static func advice(for error: any Error, path: String?) -> String {
        guard let error = error as? DatabaseError else { return "" }
        let file = path ?? "the database"
        switch error.resultCode.primaryResultCode {
        case .SQLITE_CANTOPEN:
            var isDirectory: ObjCBool = false
            if let path, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                return "\(path) is a directory: pass the path of a database file in it."
            }
            if let path {
                let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
                if !FileManager.default.fileExists(atPath: folder) { return "The folder \(folder) does not exist: create it first." }
            }
            return "Check that this process may read and write \(file) and its folder (SQLite creates its -wal and -shm files there)."
        case .SQLITE_NOTADB:
            return "\(file) is not a SQLite database: check the path."
        case .SQLITE_READONLY:
            return "\(file) or its folder is read-only for this process: fix the permissions, or open it with SQLiteStore(readingAt:) to read only."
        case .SQLITE_FULL:
            return "The disk is full: free space and try again. What was committed before is intact."
        case .SQLITE_IOERR:
            return "The disk reported an I/O error: check the device. What was committed before is intact."
        case .SQLITE_CORRUPT:
            return "The file is damaged: restore a backup (edda backup makes one)."
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return "Another connection held the database longer than the busy timeout: try again, or raise Configuration.busyTimeout."
        case .SQLITE_PERM, .SQLITE_AUTH:
            return "The operating system refused access to \(file): check its permissions."
        default:
            return ""
        }
    }
}
