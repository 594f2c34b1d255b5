import ArgumentParser
@_spi(EddaStores) import Edda
import Foundation

struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete finished instances (with their history), done outbox events and expired messages older than an age.",
        discussion: """
            Deletes completed, failed and cancelled instances last updated before the age, with their history and \
            archived history; published, failed, invalid and expired outbox events as old; and channel messages past \
            their retention. Never anything unfinished: running or compensating instances, a finished child whose \
            parent is still running (or a finished parent with a child still running), pending outbox events, \
            messages still within their retention. Deletes in batches of --batch-size rows per table, one short \
            transaction each, so that it can run next to live workers. --dry-run counts and deletes nothing.
            """
    )

    @OptionGroup var store: StoreOptions

    @Option(
        name: .customLong("older-than"),
        help: ArgumentHelp("Delete what finished before this long ago: a number and a unit, such as 30d, 12h, 90m, 45s or 2w.", valueName: "age"),
        transform: Prune.age(from:)
    )
    var olderThan: Duration

    @Flag(help: "Count what would be deleted; delete nothing.")
    var dryRun = false

    @Option(help: "The most rows deleted from each table per transaction.")
    var batchSize = 500

    @OptionGroup var output: JSONFlag

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize)).") }
    }

    func run() async throws {
        let policy = {
            var policy = RetentionPolicy(olderThan: .duration(olderThan))
            policy.batchSize = batchSize
            return policy
        }()
        let dryRun = dryRun
        let counts = try await store.withStore(writable: !dryRun) { store in
            try await Progress.during(dryRun ? "counting" : "pruning") {
                if dryRun {
                    return try await store.prunableCounts(policy)
                }
                return try await Pruner<ContinuousClock>.prune(store, policy: policy)
            }
        }
        if output.json {
            var rows: [String: Any] = [:]
            for (table, count) in counts.byTable { rows[table] = count }
            return JSONOutput.print([
                "database": store.displayName, "older_than_seconds": olderThan.components.seconds, "dry_run": dryRun, "rows": rows,
            ])
        }
        out("\(store.displayName): \(dryRun ? "would delete (dry run, nothing deleted)" : "deleted") what finished before \(Self.text(olderThan)) ago")
        for (table, count) in counts.byTable {
            out("  " + table.padding(toLength: 16, withPad: " ", startingAt: 0) + String(count))
        }
    }

    /// `30d`, `12h`, `90m`, `45s`, `2w`.
    static func age(from text: String) throws -> Duration {
        try DurationText.parse(text, option: "--older-than", allowed: ["s", "m", "h", "d", "w"], example: "30d or 12h")
    }

    /// The age as the user wrote it (largest whole unit).
    static func text(_ age: Duration) -> String {
        DurationText.text(age)
    }
}
