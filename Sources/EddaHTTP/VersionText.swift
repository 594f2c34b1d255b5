package import Edda
import Foundation

/// How an application version's unfinished instances are shown by the API and the CLI.
package enum VersionText {
    /// The keys of ``document(_:)``: `edda versions --json` prints them, `GET /api/versions` returns them.
    package static let keys: Set<String> = ["version", "unfinished", "queued", "oldest_created_at"]

    /// A version's counts as JSON: `version` is `null` for unversioned instances.
    package static func document(_ summary: ApplicationVersionSummary) -> [String: Any] {
        [
            "version": summary.version ?? NSNull(),
            "unfinished": summary.unfinished,
            "queued": summary.queued,
            "oldest_created_at": summary.oldestCreatedAt.formatted(.iso8601),
        ]
    }

    /// The version as a table or a page shows it: "unversioned" for `nil`.
    package static func name(_ version: String?) -> String {
        version ?? "unversioned"
    }
}
