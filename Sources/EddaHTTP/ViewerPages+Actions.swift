import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The viewer's actions beyond a page: sending an event to an instance, cancelling every
/// unfinished instance a filter matches (behind a confirmation page), and retrying a failed instance
/// from its failed step (behind a confirmation page, recorded in history).
extension ViewerPages {
    // MARK: - Sending an event

    /// What the send-event form shows: the values entered and an error per field (`type`, `data`).
    struct EventFormState {
        var type: String?
        var data = ""
        var errors: [String: String] = [:]
    }

    /// The form that sends an event to this instance; its type is filled in with the one the
    /// instance waits for.
    static func eventForm(id: String, instance: WorkflowInstance, state: EventFormState, token: String) -> String {
        let awaited = instance.waitingFor.flatMap { $0.kind == .event ? $0.awaited : nil }
        func mark(_ field: String) -> String {
            state.errors[field].map { " <span class=\"field-error\" id=\"event-\(field)-error\">\(HTML.escape($0))</span>" } ?? ""
        }
        var html = "<h2>Send an event</h2>"
        if !state.errors.isEmpty { html += "<p class=\"field-error\">Nothing was sent: correct the fields marked below.</p>" }
        html += "<form method=\"post\" action=\"/instances/\(HTML.pathComponent(id))/events\" class=\"event\">"
        html += "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
        html += "<div class=\"field\"><label>Type <input name=\"type\" size=\"30\" value=\"\(HTML.escape(state.type ?? awaited ?? ""))\" placeholder=\"payment.completed\"></label>"
        html += mark("type") + "</div>"
        html += "<div class=\"field\"><label>Data (JSON) <textarea name=\"data\" rows=\"4\" cols=\"60\" placeholder=\"{&quot;amount&quot;: 42}\">"
        html += "\(HTML.escape(state.data))</textarea></label>" + mark("data") + "</div>"
        html += "<button type=\"submit\">Send event</button></form>"
        return html
    }

    /// Sends the posted event to the instance and shows its page again: with the outcome, or with
    /// the error next to its field and nothing sent.
    func sendEvent(_ request: Request, id: String) async throws -> Response {
        guard let form = try await postedForm(request) else { return Self.formRefused() }
        var state = EventFormState(type: form["type"] ?? "", data: form["data"] ?? "")
        do {
            let event = try EventForm.event(type: state.type ?? "", data: try EventForm.data(state.data), id: nil)
            let delivered = try await EventForm.send(event, to: id, app: app)
            let outcome = delivered ? "delivered" : "kept"
            return Response(status: .seeOther, headers: [.location: "/instances/\(Self.percentEncoded(id))?sent=\(outcome)"])
        } catch let error as APIError where error.field == "type" || error.field == "data" {
            state.errors[error.field ?? ""] = error.message
            return try await instancePage(request, id: id, event: state, status: .unprocessableContent)
        }
    }

    // MARK: - Cancelling many

    /// The filters of a list page as query items, for its links and forms.
    static func filterItems(_ filter: InstanceQuery, request: Request) -> [URLQueryItem] {
        let query = request.uri.queryParameters
        var items: [URLQueryItem] = []
        if let status = filter.status?.rawValue { items.append(URLQueryItem(name: "status", value: status)) }
        if let workflow = filter.workflowName { items.append(URLQueryItem(name: "workflow", value: workflow)) }
        if let parent = filter.parentInstanceID { items.append(URLQueryItem(name: "parent", value: parent)) }
        if let queue = filter.queue { items.append(URLQueryItem(name: "queue", value: queue)) }
        if let key = filter.inputKey, let value = filter.inputValue {
            items += [URLQueryItem(name: "input_key", value: key), URLQueryItem(name: "input_value", value: value)]
        }
        for name in ["created_from", "created_before"] {
            if let value = query.get(name), !value.isEmpty { items.append(URLQueryItem(name: name, value: value)) }
        }
        return items
    }

    /// How many of the counted instances are unfinished (and so can be cancelled), under the status filter.
    static func unfinishedCount(_ counts: [InstanceStatus: Int], status: InstanceStatus?) -> Int {
        // Waiting instances are counted among the running ones too.
        if let status { return status.isTerminal || !status.isKnown ? 0 : counts[status] ?? 0 }
        return (counts[.running] ?? 0) + (counts[.compensating] ?? 0)
    }

    /// A short form of what an instance waits for, for the list.
    static func shortWait(_ wait: InstanceWait) -> String {
        WaitText.summary(wait, now: Date()).replacingOccurrences(of: "Waiting for ", with: "").replacingOccurrences(of: "Waiting ", with: "")
    }

    /// The filters of a bulk cancel (the list's, in the URL), or the error page that says what is missing.
    func bulkFilter(_ request: Request) -> (InstanceQuery, Response?) {
        let (filter, errors) = APIRoutes.filter(request, emptyValueIsAbsent: true)
        if let error = errors.first { return (filter, Self.errorPage(error, signsIn: signsIn)) }
        guard APIRoutes.hasFilter(filter) else {
            let error = APIError.badRequest(
                "Give at least one filter (status, workflow, parent, input, created from or before) to cancel by: filter the list first.",
                type: "invalid_filter"
            )
            return (filter, Self.errorPage(error, signsIn: signsIn))
        }
        return (filter, nil)
    }

    /// Asks before cancelling every unfinished instance the list's filters match, stating how many.
    func cancelMatchingPage(_ request: Request) async throws -> Response {
        let (filter, refused) = bulkFilter(request)
        if let refused { return refused }
        let count = Self.unfinishedCount(try await app.store.statusCounts(matching: filter), status: filter.status)
        let items = Self.filterItems(filter, request: request)
        let back = "/?\(HTML.escape(HTML.query(items)))"
        var body = "<p><a href=\"\(back)\">← Back to the list</a></p>"
        body += "<h1 id=\"bulk-count\">Cancel \(count) instance\(count == 1 ? "" : "s")?</h1>"
        body += "<p>Filters: " + items.map { "<code>\(HTML.escape($0.name))=\(HTML.escape($0.value ?? ""))</code>" }.joined(separator: " ") + "</p>"
        guard count > 0 else {
            body += "<p class=\"empty\">No unfinished instance matches: there is nothing to cancel.</p>"
            return self.page(title: "Edda — cancel", body: body)
        }
        body += "<p>Each one stops at its next step boundary, and its compensations run. Instances that finish meanwhile are left as they are; "
            + "instances that start meanwhile and match are cancelled too.</p>"
        let (token, cookie) = Self.csrfToken(request)
        body += "<form method=\"post\" action=\"/cancel?\(HTML.escape(HTML.query(items)))\"><input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
        body += "<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
        body += "<button type=\"submit\">Cancel \(count) instance\(count == 1 ? "" : "s")</button> <a href=\"\(back)\">Back, without cancelling</a></form>"
        var response = self.page(title: "Edda — cancel \(count)?", body: body)
        if let cookie { response.headers[.setCookie] = cookie }
        return response
    }

    /// Cancels every unfinished instance the filters match, once confirmed, and says how many.
    func cancelMatching(_ request: Request) async throws -> Response {
        guard let form = try await postedForm(request) else { return Self.formRefused() }
        guard form["confirm"] == "yes" else { return try await cancelMatchingPage(request) }
        let (filter, refused) = bulkFilter(request)
        if let refused { return refused }
        let (cancelled, skipped) = try await APIRoutes.cancelAll(matching: filter, app: app)
        let back = "/?\(HTML.escape(HTML.query(Self.filterItems(filter, request: request))))"
        var body = "<p><a href=\"\(back)\">← Back to the list</a></p>"
        body += "<h1 id=\"bulk-done\">Cancellation requested for \(cancelled.count) instance\(cancelled.count == 1 ? "" : "s")</h1>"
        if skipped > 0 { body += "<p>\(skipped) finished meanwhile and were left as they are.</p>" }
        body += "<p>Each one stops at its next step boundary; the list shows them as cancelled once they have.</p>"
        return self.page(title: "Edda — cancelled", body: body)
    }

    // MARK: - Retrying

    /// Asks before retrying a failed instance: what runs again, which compensations already ran
    /// (they do not run again), and whether anything here will run it. Its form posts `confirm=yes`.
    func retryPage(_ request: Request, id: String) async throws -> Response {
        guard let instance = try await app.instance(id) else { throw APIError.notFound("No workflow instance has ID \(id).", field: "id") }
        guard instance.status == .failed else {
            throw APIError(
                status: .conflict, type: "not_failed",
                message: "Instance \(id) is \(instance.status), not failed: there is nothing to retry, and nothing was changed."
            )
        }
        // What the store's retry will find: the last outcome, if it is a failed activity.
        let history = try await app.history(of: id)
        let notOutcomes: Set<HistoryEventKind> = [.attemptFailed, .compensationCompleted, .compensationFailed, .retried]
        let outcomes = history.filter { !notOutcomes.contains($0.kind) }
        let failed = outcomes.last.flatMap { $0.kind == .activityFailed ? $0 : nil }
        let compensations = history.filter { $0.kind == .compensationCompleted || $0.kind == .compensationFailed }
        let link = "/instances/\(HTML.pathComponent(id))"

        var body = "<p><a href=\"\(link)\">← \(HTML.escape(id))</a></p>"
        body += "<h1>Retry \(HTML.escape(id))\(failed.map { " from step \(HTML.escape($0.stepID))" } ?? "")?</h1>"
        body += "<dl><dt>Workflow</dt><dd>\(HTML.escape(instance.workflowName)) (run \(instance.runNumber))</dd>"
        if let error = failed?.error ?? instance.error { body += "<dt>Error</dt><dd><pre class=\"error\">\(HTML.escape("\(error)"))</pre></dd>" }
        if let failed { body += "<dt>Attempts</dt><dd>\(Self.attempts(failed.retry))</dd>" }
        body += "</dl>"
        if let failed {
            body += "<p>The next run replays the \(outcomes.count - 1) step\(outcomes.count == 2 ? "" : "s") recorded before it (their results, not their code) "
                + "and runs step \(HTML.escape(failed.stepID)) afresh, with a fresh retry budget. Its failure moves to the history archive: "
                + "it stays on the instance page, marked archived.</p>"
        } else {
            body += "<p class=\"field-error\">The workflow failed in its own code, not in a step: it runs again from history as it is, "
                + "and fails the same way unless its code changed.</p>"
        }
        if !compensations.isEmpty {
            body += "<div class=\"warning\" id=\"compensations\"><p class=\"field-error\">Compensations already ran: "
                + compensations.map { "<code>\(HTML.escape($0.stepID))</code> (\(HTML.escape($0.kind == .compensationFailed ? "failed" : "completed")))" }
                .joined(separator: ", ")
                + ".</p><p>They are not undone and do not run again, even if the retried run fails too. Retry only if running "
                + "the remaining steps after them is what you want.</p></div>"
        }
        body += noWorkerNote(instance.workflowName, retrying: true)
        body += "<p>The retry is recorded in the instance's history: who asked, when, and which step.</p>"
        let (token, cookie) = Self.csrfToken(request)
        body += "<form method=\"post\" action=\"\(link)/retry\"><input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
        body += "<input type=\"hidden\" name=\"confirm\" value=\"yes\">"
        body += "<button type=\"submit\">\(failed.map { "Retry from step \(HTML.escape($0.stepID))" } ?? "Run it again")</button> "
        body += "<a href=\"\(link)\">Back, without retrying</a></form>"
        var response = self.page(title: "Edda — retry \(id)?", body: body)
        if let cookie { response.headers[.setCookie] = cookie }
        return response
    }

    /// Says that no worker here runs the workflow (`edda serve` registers none), or nothing.
    func noWorkerNote(_ workflowName: String, retrying: Bool) -> String {
        guard !app.registeredWorkflowNames.contains(workflowName) else { return "" }
        let name = HTML.escape(workflowName)
        return "<p class=\"field-error\" id=\"no-worker\">No worker here runs workflow \(name): this server registers no such workflow "
            + "(<code>edda serve</code> runs none). " + (retrying ? "The retry is recorded, but nothing runs it" : "Nothing here runs this instance")
            + " until an app that registers \(name) runs on this database.</p>"
    }

    /// The instance's retries: who, when, which step, and the failure each moved to the archive.
    static func retriesSection(_ retries: [HistoryEvent]) -> String {
        var html = "<h2>Retries</h2><table class=\"retries\"><thead><tr><th>Retried</th><th>By</th><th>Step</th><th>Archived failure</th></tr></thead><tbody>"
        for event in retries {
            let record = retryRecord(event)
            html += "<tr><td>\(HTML.timeTag(event.recordedAt))</td><td>\(HTML.escape(record?.requestedBy ?? "?"))</td>"
            html += "<td>\(record?.step.map(HTML.escape) ?? "<small>(none: the workflow failed outside a step)</small>")</td><td>"
            if let failure = record?.failure {
                html += "<span class=\"tag\">archived</span> #\(failure.sequence), recorded \(HTML.timeTag(failure.recordedAt)), "
                html += "\(attempts(failure.retry)) attempt\(failure.retry.map { $0.totalAttempts == 1 ? "" : "s" } ?? ""): "
                html += "<code class=\"error\">\(HTML.escape(failure.error.map { "\($0)" } ?? "(unreadable)"))</code>"
            }
            html += "</td></tr>"
        }
        return html + "</tbody></table>"
    }

    /// A history row for a failure a retry moved to the archive, marked archived.
    static func archivedRow(_ failure: RetryRecord.ArchivedFailure, stepID: String) -> String {
        var html = "<tr class=\"failed archived\"><td>\(failure.sequence)</td><td>\(HTML.escape(stepID))</td>"
        html += "<td>\(HTML.escape(HistoryEventKind.activityFailed.rawValue)) <span class=\"tag\">archived</span></td><td></td>"
        html += "<td>\(attempts(failure.retry))</td><td>\(HTML.timeTag(failure.recordedAt))</td>"
        html += "<td><code>\(HTML.escape(String((failure.error.map { "\($0)" } ?? "").prefix(500))))</code></td></tr>"
        return html
    }

    static func retryRecord(_ event: HistoryEvent) -> RetryRecord? {
        guard event.kind == .retried else { return nil }
        return try? event.payload?.decode(RetryRecord.self)
    }

    static func retrySummary(_ record: RetryRecord) -> String {
        "by \(record.requestedBy)" + (record.step.map { ", from step \($0)" } ?? ", the workflow again (no failed step)")
            + (record.failure.map { "; its failure (#\($0.sequence)) moved to the archive" } ?? "")
    }

    /// Who a request acts for, as a retry records it: the viewer or the API, with the client's
    /// address (when the request context knows it) and how it proved the token (when there is one).
    static func requester<Context: RequestContext>(_ surface: String, _ request: Request, _ context: Context, signsIn: Bool) -> String {
        var details: [String] = []
        if let address = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress { details.append(address) }
        if signsIn { details.append(request.headers[.authorization] != nil ? "bearer token" : "signed in") }
        return details.isEmpty ? surface : "\(surface) (\(details.joined(separator: ", ")))"
    }

    /// A state-changing form (Cancel): checked against cross-site requests, then done.
    func act(_ request: Request, id: String, _ action: (String) async throws -> Void) async throws -> Response {
        guard (try await postedForm(request)) != nil else { return Self.formRefused() }
        try await action(id)
        return Response(status: .seeOther, headers: [.location: "/instances/\(Self.percentEncoded(id))"])
    }
}
