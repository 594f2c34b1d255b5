#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@_spi(EddaStores) import Edda

/// An exclusive advisory lock (`flock`) on a file beside the database, held by the one process
/// that runs workers on it.
///
/// The kernel releases it when the process exits, however it exits — SIGKILL included — so the
/// next process takes it at once and knows every `running` instance it finds is orphaned.
final class ProcessLock: Sendable {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreError(.database, "Cannot open the lock file \(path): \(String(cString: strerror(errno))).")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw StoreError(
                .databaseInUse,
                "Another process (\(holder.map { "pid \($0)" } ?? "unknown pid")) runs workers on this SQLite database; "
                    + "a SQLite file has one worker process at a time. Stop it, or use PostgreSQL for several workers. "
                    + "Reading (the CLI's list and show) works alongside it."
            )
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.descriptor = fd
    }

    deinit {
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
