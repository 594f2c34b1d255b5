package import Edda
import Foundation

/// How a queue is shown by the API, the viewer and the CLI.
package enum QueueText {
    /// A queue as JSON: its limits (`null` for none) and its counts.
    package static func document(_ queue: QueueSummary) -> [String: Any] {
        [
            "name": queue.name,
            "concurrency": queue.concurrency ?? NSNull(),
            "worker_concurrency": queue.workerConcurrency ?? NSNull(),
            "partitioned": queue.partitioned,
            "rate_limit": queue.rateLimit.map { ["limit": $0.limit, "period_seconds": seconds($0.period)] as [String: Any] } ?? NSNull(),
            "queued": queue.queued,
            "running": queue.running,
            "declared_at": queue.declaredAt.formatted(.iso8601),
        ]
    }

    /// "10 per 1 min", "3 per 500 ms".
    package static func rate(_ rate: Queue.RateLimit) -> String {
        let milliseconds = Int64((seconds(rate.period) * 1000).rounded())
        let period =
            switch milliseconds {
            case let ms where ms % 3_600_000 == 0: "\(ms / 3_600_000) h"
            case let ms where ms % 60_000 == 0: "\(ms / 60_000) min"
            case let ms where ms % 1_000 == 0: "\(ms / 1_000) s"
            default: "\(milliseconds) ms"
            }
        return "\(rate.limit) per \(period)"
    }

    /// "2nd in line", "next in line".
    package static func position(_ position: Int) -> String {
        guard position > 1 else { return "next in line" }
        let suffix =
            switch (position % 10, position % 100) {
            case (_, 11...13): "th"
            case (1, _): "st"
            case (2, _): "nd"
            case (3, _): "rd"
            default: "th"
            }
        return "\(position)\(suffix) in line"
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
