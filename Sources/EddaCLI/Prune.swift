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

    static let units: [(suffix: Character, seconds: Int64)] = [("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400), ("w", 604_800)]

    /// `30d`, `12h`, `90m`, `45s`, `2w`.
    static func age(from text: String) throws -> Duration {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard let unit = trimmed.last, let seconds = units.first(where: { $0.suffix == unit })?.seconds,
              let amount = Int64(trimmed.dropLast()), amount >= 0, amount <= Int64.max / 1000 / seconds
        else {
            throw ValidationError("--older-than takes a whole number and a unit (s, m, h, d or w), such as 30d or 12h; '\(text)' is not one.")
        }
        return .seconds(amount * seconds)
    }

    /// The age as the user wrote it (largest whole unit).
    static func text(_ age: Duration) -> String {
        let seconds = age.components.seconds
        guard let unit = units.reversed().first(where: { seconds % $0.seconds == 0 && seconds > 0 }) else { return "0s" }
        return "\(seconds / unit.seconds)\(unit.suffix)"
    }
}
