import Edda
import Foundation
import Hummingbird

/// An instance page's lower half: its retries, the timeline of its steps (``Timeline``), and its
/// history a page at a time — the latest ``historyPageSize`` records first, with links to the
/// earlier and later pages (`?before=` and `?after=` a record's sequence number, as the list pages
/// by cursor), each record's result or error as a JSON tree (``JSONTree``).
extension ViewerPages {
    /// Records shown on one page of the history.
    static let historyPageSize = 200
    /// Records the timeline reads, from the first: at most this many.
    static let timelineRecords = 2_000

    func historySection(_ request: Request, instance: WorkflowInstance, now: Date) async throws -> String {
        let id = instance.instanceID
        let query = request.uri.queryParameters
        let failedOnly = query.get("failed") == "true"
        // "Failed only" keeps the retries, which carry the failures they moved to the archive.
        let kinds = failedOnly ? HistoryEventKind.failures.union([.retried]) : nil
        let page = try await historyPage(of: id, after: query.get("after").flatMap { Int64($0) }, before: query.get("before").flatMap { Int64($0) }, kinds: kinds)
        let retries = try await app.history(of: id, matching: HistoryQuery(limit: 100, kinds: [.retried]))
        // The timeline reads the first records: 500 steps with their attempts fit.
        let firstRecords = try await app.history(of: id, matching: HistoryQuery(limit: Self.timelineRecords))

        var html = retries.isEmpty ? "" : Self.retriesSection(retries)
        html += "<h2>Timeline</h2>" + Timeline.html(firstRecords, instance: instance, now: now, complete: firstRecords.count < Self.timelineRecords)
        let link = "/instances/\(HTML.pathComponent(id))"
        html += "<h2>History</h2><p>"
        html += failedOnly ? "<a href=\"\(link)\">Show all</a>" : "<a href=\"\(link)?failed=true\">Failed only</a>"
        if let first = page.records.first, let last = page.records.last {
            html += " · records #\(first.sequence)–#\(last.sequence)\(page.hasLater ? "" : ", the latest")"
        }
        html += "</p>"
        if let claimedAt = instance.lastClaimedAt {
            html += "<p class=\"note\">The latest run began at \(HTML.timeTag(claimedAt, now: now)): it replayed the records made before then from history, "
                + "without running them again, and executed the ones after.</p>"
        }
        let paging = Self.historyPaging(page, link: link, failedOnly: failedOnly)
        html += paging
        html += "<table id=\"history\"><thead><tr><th>#</th><th>Step</th><th>Kind</th><th>Latest run</th><th>Attempts</th><th>Recorded</th><th>Result or error</th></tr></thead><tbody>"
        for event in page.records {
            if event.kind == .retried, let failure = Self.retryRecord(event)?.failure {
                // The failure this retry moved to the archive, where it happened in the history.
                html += Self.archivedRow(failure, stepID: event.stepID)
            }
            let failed = HistoryEventKind.failures.contains(event.kind)
            html += "<tr\(failed ? " class=\"failed\"" : "")><td>\(event.sequence)</td><td>\(HTML.escape(event.stepID))</td>"
            html += "<td>\(HTML.escape(event.kind.rawValue))\(Self.role(of: event.kind).map { " <span class=\"tag\">\($0)</span>" } ?? "")</td>"
            let replayed = instance.lastClaimedAt.map { event.recordedAt < $0 } ?? false
            html += "<td>\(instance.lastClaimedAt == nil ? "" : replayed ? "<span class=\"tag\">replayed</span>" : "executed")</td>"
            html += "<td>\(Self.attempts(event.retry))</td><td>\(HTML.timeTag(event.recordedAt, now: now))</td><td>"
            if let error = event.error {
                html += JSONTree.html(error: error)
            } else if let record = Self.retryRecord(event) {
                html += "<code>\(HTML.escape(Self.retrySummary(record)))</code>"
            } else if let payload = event.payload {
                html += JSONTree.html(payload.json)
            }
            html += "</td></tr>"
        }
        return html + "</tbody></table>" + paging
    }

    /// One page of a history and whether there are records before and after it.
    struct HistoryPage {
        var records: [HistoryEvent]
        var hasEarlier: Bool
        var hasLater: Bool
    }

    /// The page after the record `after`, or the page before the record `before`, or (with
    /// neither) the latest page. Each is one query, and one more of a single record for the other
    /// direction. Any number is taken (the URL's), without overflowing.
    func historyPage(of id: String, after: Int64?, before: Int64?, kinds: Set<HistoryEventKind>?) async throws -> HistoryPage {
        let limit = Self.historyPageSize
        if let after {
            let read = try await app.history(of: id, matching: HistoryQuery(after: after, limit: limit + 1, kinds: kinds))
            let records = Array(read.prefix(limit))
            let earlier = try await app.history(of: id, matching: HistoryQuery(before: records.first?.sequence ?? min(after, .max - 1) + 1, limit: 1, kinds: kinds))
            return HistoryPage(records: records, hasEarlier: !earlier.isEmpty, hasLater: read.count > limit)
        }
        let read = try await app.history(of: id, matching: HistoryQuery(before: before ?? .max, limit: limit + 1, kinds: kinds))
        let records = Array(read.suffix(limit))
        var hasLater = false
        if let before {
            hasLater = !(try await app.history(of: id, matching: HistoryQuery(after: records.last?.sequence ?? max(before, .min + 1) - 1, limit: 1, kinds: kinds))).isEmpty
        }
        return HistoryPage(records: records, hasEarlier: read.count > limit, hasLater: hasLater)
    }

    /// The links to the earlier, later and latest pages, as the list's.
    static func historyPaging(_ page: HistoryPage, link: String, failedOnly: Bool) -> String {
        let filter = failedOnly ? "&amp;failed=true" : ""
        var links: [String] = []
        if page.hasEarlier, let first = page.records.first {
            links.append("<a href=\"\(link)?before=\(first.sequence)\(filter)\" rel=\"prev\">← Earlier records</a>")
        }
        if page.hasLater, let last = page.records.last {
            links.append("<a href=\"\(link)?after=\(last.sequence)\(filter)\" rel=\"next\">Later records →</a>")
            links.append("<a href=\"\(link)\(failedOnly ? "?failed=true" : "")\">Latest records ⇥</a>")
        }
        return links.isEmpty ? "" : "<p class=\"paging\">\(links.joined(separator: " · "))</p>"
    }

    /// What a record stands for in the history, beyond running an activity.
    static func role(of kind: HistoryEventKind) -> String? {
        switch kind {
        case .compensationCompleted, .compensationFailed: "compensation"
        case .timerScheduled, .messageReceived, .waitTimedOut: "wait"
        case .childStarted: "child"
        case .valueRecorded: "value"
        case .messagePublished: "message"
        case .attemptFailed: "retrying"
        case .retried: "retried by hand"
        case .patchMarker: "patch"
        default: nil
        }
    }

    /// The attempts column: how many, how long they took, whether the policy gave up.
    static func attempts(_ retry: RetryMetadata?) -> String {
        guard let retry else { return "1" }
        var text = "\(retry.totalAttempts)"
        if retry.totalAttempts > 1 { text += " in \(Double(retry.totalDurationMilliseconds) / 1000) s" }
        if retry.exhausted { text += ", <span class=\"error\">retries exhausted</span>" }
        return text
    }
}
