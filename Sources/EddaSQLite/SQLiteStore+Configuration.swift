extension SQLiteStore {
    /// Settings of a SQLite store.
    public struct Configuration: Sendable {
        /// How hard each commit waits for the disk. Defaults to ``Durability-swift.struct/full``.
        public var durability: Durability = .full

        /// How long a write waits for another connection's lock before failing. Defaults to 5 seconds.
        public var busyTimeout: Duration = .seconds(5)

        /// SQLite's page cache per connection, in KiB (`PRAGMA cache_size = -N`); `nil` keeps
        /// SQLite's default (2,048 KiB). Edda appends at the end of its tables, so a small cache
        /// costs little speed: 512 saves about 1 MB of resident memory. Defaults to `nil`.
        public var pageCacheKiB: Int?

        public init() {}
    }

    /// SQLite's `synchronous` setting, in WAL mode.
    public struct Durability: Hashable, Sendable, CustomStringConvertible {
        let pragma: String

        /// `synchronous=FULL`: every commit is on disk before it returns. A power loss loses nothing
        /// committed. The default.
        public static let full = Durability(pragma: "FULL")

        /// `synchronous=NORMAL`: commits survive a process crash, but the last ones may be lost on a
        /// power loss or OS crash. Faster; choose it knowingly.
        public static let normal = Durability(pragma: "NORMAL")

        public var description: String { pragma }
    }
}
