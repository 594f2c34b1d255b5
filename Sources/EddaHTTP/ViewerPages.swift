import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The viewer: server-rendered HTML pages that need nothing from the network (no CDN, no script
/// framework): the instance list (paged both ways, with a bulk cancel behind a confirmation page
/// that states the count) and an instance's page — what it waits for, its parent and children with
/// their statuses, a Cancel button and a form that sends it an event (or, for a failed instance,
/// Retry from the failed step, which asks for confirmation on a page of its own and is recorded in
/// history). Its errors are pages too (``errorPage(_:signsIn:)``), with a field's error next to it.
///
/// Every piece of user data (IDs, inputs, outputs, errors) goes through ``HTML/escape(_:)``. The
/// state-changing forms (Cancel, Retry, Send an event, the bulk cancel) post with a token that must
/// match the `edda_csrf` cookie the page set (double-submit), and a cross-site `Origin` is refused.
struct ViewerPages: Sendable {
    let app: EddaApp
    let maxBodyBytes: Int
    /// Whether the server takes a token, so pages offer Sign out.
    let signsIn: Bool

    func register<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/", .get) { request, _ in try await list(request) }
        routes.on("/workflows", .get) { _, _ in workflows() }
        routes.on("/workflows/:name/start", .get) { request, context in
            let name = try context.parameters.decoded("name")
            guard let shapes = app.inputShapes(ofWorkflowNamed: name) else { return unknownWorkflow(name) }
            return startPage(name, StartForm(shapes: shapes), request: request)
        }
        routes.on("/workflows/:name/start", .post) { request, context in try await start(request, name: try context.parameters.decoded("name")) }
        routes.on("/instances/:id", .get) { request, context in try await instancePage(request, id: try context.parameters.decoded("id")) }
        routes.on("/instances/:id/events", .post) { request, context in try await sendEvent(request, id: try context.parameters.decoded("id")) }
        routes.on("/cancel", .get) { request, _ in try await cancelMatchingPage(request) }
        routes.on("/cancel", .post) { request, _ in try await cancelMatching(request) }
        routes.on("/instances/:id/cancel", .post) { request, context in
            try await act(request, id: try context.parameters.decoded("id")) { id in try await app.cancel(id) }
        }
        routes.on("/instances/:id/retry", .get) { request, context in try await retryPage(request, id: try context.parameters.decoded("id")) }
        routes.on("/instances/:id/retry", .post) { request, context in
            let id = try context.parameters.decoded("id")
            guard let form = try await postedForm(request) else { return Self.formRefused() }
            // Only the confirmation page's form retries; any other post shows that page.
            guard form["confirm"] == "yes" else { return try await retryPage(request, id: id) }
            try await app.retry(id, requestedBy: Self.requester("viewer", request, context, signsIn: signsIn))
            return Response(status: .seeOther, headers: [.location: "/instances/\(Self.percentEncoded(id))"])
        }
    }

    /// A viewer page, with Sign out when the server takes a token.
    func page(title: String, head: String = "", body: String, status: HTTPResponse.Status = .ok, live: String? = nil) -> Response {
        Self.page(title: title, head: head, body: body, status: status, signsIn: signsIn, live: live)
    }

    /// `live`: the page's event stream (``LivePages``), which `/static/live.js` follows, showing
    /// the hidden "live" indicator; without JavaScript the page stays as served.
    static func page(
        title: String, head: String = "", body: String, status: HTTPResponse.Status = .ok, signsIn: Bool, live: String? = nil
    ) -> Response {
        let signOut = signsIn ? "<form method=\"post\" action=\"/logout\" class=\"signout\"><button type=\"submit\">Sign out</button></form>" : ""
        let indicator = live == nil ? "" : "<span id=\"live\" class=\"live\" hidden></span>"
        let script = live == nil ? "" : "<script src=\"/static/live.js\" defer></script>"
        return HTML.page(title: title, head: head + script, body: signOut + indicator + body, status: status, live: live)
    }

    /// The page for an error a viewer route threw (an unknown instance or page, another method, a
    /// form over the size limit, a refused request): its status and message in the viewer's
    /// layout, with the error's headers (`Allow`, `Retry-After`). The API answers the same errors as JSON.
    static func errorPage(_ error: APIError, signsIn: Bool) -> Response {
        let title = error.status.reasonPhrase
        var body = "<p><a href=\"/\">← All instances</a></p><h1>\(HTML.escape(title))</h1>"
        body += "<p class=\"field-error\">\(HTML.escape(error.message))</p>"
        var response = page(title: "Edda — \(title)", body: body, status: error.status, signsIn: signsIn)
        for header in error.headers { response.headers.append(header) }
        return response
    }

    // MARK: - Pages

    func list(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let (parsed, errors) = APIRoutes.filter(request, emptyValueIsAbsent: true)
        var filter = parsed
        filter.limit = 50   // the viewer's page size, whatever the URL says
        // Each error goes next to its field; one about a field the form does not show, above it.
        let shown = ["status", "workflow", "input_key", "input_value", "created_from", "created_before", "parent"]
        var fieldErrors: [String: String] = [:]
        var otherErrors: [String] = []
        for error in errors where error.field != "limit" {
            if let field = error.field, shown.contains(field) { fieldErrors[field] = fieldErrors[field] ?? error.message } else { otherErrors.append(error.message) }
        }
        let valid = fieldErrors.isEmpty && otherErrors.isEmpty
        func mark(_ field: String) -> String {
            fieldErrors[field].map { " <span class=\"field-error\">\(HTML.escape($0))</span>" } ?? ""
        }
        let status = query.get("status")
        let workflow = filter.workflowName
        let page = valid ? try await app.instances(matching: filter) : InstancePage(instances: [], nextCursor: nil)
        let counts = valid ? try await app.store.statusCounts(matching: filter) : nil
        let refresh = query.get("refresh").flatMap(Int.init).map { min(max($0, 2), 300) }

        var body = "<p><a href=\"/workflows\">Start a workflow →</a></p><h1>Workflow instances</h1>"
        if let parent = filter.parentInstanceID {
            body += "<p>Children of <a href=\"/instances/\(HTML.pathComponent(parent))\">\(HTML.escape(parent))</a> · <a href=\"/\">all instances</a></p>"
        }
        for message in otherErrors { body += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
        if !fieldErrors.isEmpty { body += "<p class=\"field-error\">No instances are listed: correct the filters marked below.</p>" }
        body += "<form method=\"get\" action=\"/\" class=\"filters\">"
        body += "<label>Status <select name=\"status\"><option value=\"\">any</option>"
        for option in InstanceStatus.all {
            let selected = option.rawValue == status ? " selected" : ""
            body += "<option value=\"\(option.rawValue)\"\(selected)>\(option.rawValue)\(counts.map { " (\($0[option] ?? 0))" } ?? "")</option>"
        }
        body += "</select></label>\(mark("status")) <label>Workflow <input name=\"workflow\" value=\"\(HTML.escape(workflow ?? ""))\"></label>"
        body += " <label>Input <input name=\"input_key\" placeholder=\"key\" size=\"10\" value=\"\(HTML.escape(query.get("input_key") ?? ""))\"></label>"
        body += mark("input_key")
        body += " = <input name=\"input_value\" placeholder=\"value\" size=\"14\" value=\"\(HTML.escape(query.get("input_value") ?? ""))\">"
        body += mark("input_value")
        body += " <label>Created from <input name=\"created_from\" placeholder=\"2026-11-25\" size=\"18\" value=\"\(HTML.escape(query.get("created_from") ?? ""))\"></label>"
        body += mark("created_from")
        body += " <label>before <input name=\"created_before\" placeholder=\"2026-11-26T08:00\" size=\"18\" value=\"\(HTML.escape(query.get("created_before") ?? ""))\"></label>"
        body += mark("created_before")
        body += " <label>Refresh every <input name=\"refresh\" size=\"3\" value=\"\(refresh.map(String.init) ?? "")\"> s</label>"
        if let parent = filter.parentInstanceID { body += "<input type=\"hidden\" name=\"parent\" value=\"\(HTML.escape(parent))\">" }
        body += " <button type=\"submit\">Filter</button></form>"
        guard valid else { return self.page(title: "Edda — instances", body: body, status: .badRequest) }
        body += "<div id=\"instances\" data-live-part>"
        if page.instances.isEmpty {
            body += "<p class=\"empty\">No instances.</p>"
        } else {
            body += "<table><thead><tr><th>Instance</th><th>Workflow</th><th>Status</th><th>Created</th><th>Updated</th></tr></thead><tbody>"
            for instance in page.instances {
                body += "<tr><td><a href=\"/instances/\(HTML.pathComponent(instance.instanceID))\">\(HTML.escape(instance.instanceID))</a></td>"
                let warning = instance.unreadable.map { " <span class=\"badge failed\" title=\"\(HTML.escape($0))\">unreadable</span>" } ?? ""
                let waiting = instance.waitingFor.map { " <small class=\"waits\">\(HTML.escape(Self.shortWait($0)))</small>" } ?? ""
                body += "<td>\(HTML.escape(instance.workflowName))</td><td>\(HTML.badge(instance.displayStatus))\(waiting)\(warning)</td>"
                body += "<td>\(HTML.time(instance.createdAt))</td><td>\(HTML.time(instance.updatedAt))</td></tr>"
            }
            body += "</tbody></table>"
        }
        // The filters of this page, for its links (next, previous, bulk cancel).
        let filterItems = Self.filterItems(filter, request: request)
        let refreshItem = refresh.map { [URLQueryItem(name: "refresh", value: String($0))] } ?? []
        var paging: [String] = []
        if let previous = page.previousCursor {
            let items = [URLQueryItem(name: "before", value: previous.description)] + filterItems + refreshItem
            paging.append("<a href=\"/?\(HTML.escape(HTML.query(items)))\" rel=\"prev\">← Previous page</a>")
        }
        if let next = page.nextCursor {
            let items = [URLQueryItem(name: "after", value: next.description)] + filterItems + refreshItem
            paging.append("<a href=\"/?\(HTML.escape(HTML.query(items)))\" rel=\"next\">Next page →</a>")
        }
        if !paging.isEmpty { body += "<p class=\"paging\">\(paging.joined(separator: " · "))</p>" }
        if let counts, APIRoutes.hasFilter(filter), Self.unfinishedCount(counts, status: filter.status) > 0 {
            // A GET: the confirmation page states the count; only its form cancels.
            body += "<form method=\"get\" action=\"/cancel\" class=\"bulk\">"
            for item in filterItems { body += "<input type=\"hidden\" name=\"\(HTML.escape(item.name))\" value=\"\(HTML.escape(item.value ?? ""))\">" }
            body += "<button type=\"submit\">Cancel all \(Self.unfinishedCount(counts, status: filter.status)) unfinished matching…</button></form>"
        }
        body += "</div>"
        // The refresh reloads this same URL: the filters, kept in it, survive.
        let head = refresh.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? ""
        let live = "/live?" + (request.uri.query.map { $0.isEmpty ? "" : $0 + "&" } ?? "") + "since=\(LivePages.signature(of: page))"
        return self.page(title: "Edda — instances", head: head, body: body, live: live)
    }

    func instancePage(_ request: Request, id: String, event: EventFormState = EventFormState(), status: HTTPResponse.Status = .ok) async throws -> Response {
        guard let instance = try await app.instance(id) else {
            return self.page(title: "Not found", body: "<h1>Not found</h1><p>No workflow instance has ID \(HTML.escape(id)).</p>", status: .notFound)
        }
        let query = request.uri.queryParameters
        let failedOnly = query.get("failed") == "true"
        let after = query.get("after").flatMap { Int64($0) } ?? 0
        let limit = 200
        // Pages are read in the database: a history of 20,000 records costs one page here.
        // "Failed only" keeps the retries, which carry the failures they moved to the archive.
        let failedKinds = HistoryEventKind.failures.union([.retried])
        let records = try await app.history(of: id, matching: HistoryQuery(after: after, limit: limit + 1, kinds: failedOnly ? failedKinds : nil))
        let retries = try await app.history(of: id, matching: HistoryQuery(limit: 100, kinds: [.retried]))
        let page = Array(records.prefix(limit))
        // The diagram shows the first steps (at most 200 boxes), from the first records.
        let firstRecords = try await app.history(of: id, matching: HistoryQuery(limit: 2_000))

        var body = "<p><a href=\"/\">← All instances</a></p>"
        // The parts marked data-live-part are what the live script swaps (``LivePages``).
        body += "<div id=\"title\" data-live-part><h1>\(HTML.escape(instance.instanceID)) \(HTML.badge(instance.displayStatus))</h1></div>"
        body += "<dl id=\"summary\" data-live-part><dt>Workflow</dt><dd>\(HTML.escape(instance.workflowName)) (service \(HTML.escape(instance.serviceName)), run \(instance.runNumber))</dd>"
        if let parent = instance.parentInstanceID {
            let parentStatus = try await app.instance(parent).map { " " + HTML.badge($0.displayStatus) } ?? " <small>(removed)</small>"
            body += "<dt>Parent</dt><dd id=\"parent\"><a href=\"/instances/\(HTML.pathComponent(parent))\">\(HTML.escape(parent))</a>\(parentStatus)</dd>"
        }
        body += "<dt>Created</dt><dd>\(HTML.time(instance.createdAt))</dd><dt>Updated</dt><dd>\(HTML.time(instance.updatedAt))</dd>"
        if let problem = instance.unreadable { body += "<dt>Unreadable</dt><dd class=\"error\">\(HTML.escape(problem))</dd>" }
        if let wait = instance.waitingFor {
            let now = Date()
            body += "<dt>Waiting for</dt><dd id=\"waiting\">\(WaitText.summary(wait, now: now) { "<code>\(HTML.escape($0))</code>" })"
            if let deadline = wait.deadline {
                body += "<br><small>deadline <time datetime=\"\(HTML.time(deadline))\" title=\"\(HTML.time(deadline)) UTC\">"
                body += "\(HTML.escape(WaitText.localTime(deadline)))</time> (\(HTML.escape(WaitText.relative(deadline, now: now))))</small>"
            }
            body += "</dd>"
        }
        body += "<dt>Input</dt><dd><pre>\(HTML.escape(instance.input.json))</pre></dd>"
        if let output = instance.output { body += "<dt>Output</dt><dd><pre>\(HTML.escape(output.json))</pre></dd>" }
        if let error = instance.error { body += "<dt>Error</dt><dd><pre class=\"error\">\(HTML.escape("\(error)"))</pre></dd>" }
        body += "</dl>"
        // The outcome of the event the form sent, on the page it redirected to.
        switch query.get("sent") {
        case "delivered": body += "<p class=\"note\" id=\"event-sent\">The event was delivered: the instance took it and runs on.</p>"
        case "kept": body += "<p class=\"note\" id=\"event-sent\">The event was kept: the instance takes it when it waits for its type.</p>"
        default: break
        }
        body += "<div id=\"actions\" data-live-part>"
        if !instance.status.isTerminal { body += noWorkerNote(instance.workflowName, retrying: false) }
        var headers: HTTPFields = [:]
        if instance.status == .failed {
            // A page of its own asks for confirmation first: a GET here changes nothing.
            body += "<form method=\"get\" action=\"/instances/\(HTML.pathComponent(id))/retry\">"
            body += "<button type=\"submit\">Retry from the failed step…</button></form>"
        } else if !instance.status.isTerminal {
            let (token, cookie) = Self.csrfToken(request)
            if let cookie { headers[.setCookie] = cookie }
            body += "<form method=\"post\" action=\"/instances/\(HTML.pathComponent(id))/cancel\">"
            body += "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\"><button type=\"submit\">Cancel</button></form>"
            body += Self.eventForm(id: id, instance: instance, state: event, token: token)
        }
        let children = try await app.instances(matching: Self.childrenQuery(of: id))
        body += "</div><div id=\"children-part\" data-live-part>" + Self.childrenSection(of: id, children) + "</div>"
        body += "<div id=\"history-part\" data-live-part>"
        if !retries.isEmpty { body += Self.retriesSection(retries) }
        body += "<h2>Steps</h2>" + Diagram.svg(firstRecords)
        body += "<h2>History\(after > 0 ? " after #\(after)" : "")</h2><p>"
        body += failedOnly
            ? "<a href=\"/instances/\(HTML.pathComponent(id))\">Show all</a>" : "<a href=\"/instances/\(HTML.pathComponent(id))?failed=true\">Failed only</a>"
        body += "</p>"
        if let claimedAt = instance.lastClaimedAt {
            body += "<p class=\"note\">The latest run began at \(HTML.time(claimedAt)): it replayed the records made before then from history, "
                + "without running them again, and executed the ones after.</p>"
        }
        body += "<table><thead><tr><th>#</th><th>Step</th><th>Kind</th><th>Latest run</th><th>Attempts</th><th>Recorded</th><th>Result or error</th></tr></thead><tbody>"
        for event in page {
            if event.kind == .retried, let failure = Self.retryRecord(event)?.failure {
                // The failure this retry moved to the archive, where it happened in the history.
                body += Self.archivedRow(failure, stepID: event.stepID)
            }
            let failed = HistoryEventKind.failures.contains(event.kind)
            body += "<tr\(failed ? " class=\"failed\"" : "")><td>\(event.sequence)</td><td>\(HTML.escape(event.stepID))</td>"
            body += "<td>\(HTML.escape(event.kind.rawValue))\(Self.role(of: event.kind).map { " <span class=\"tag\">\($0)</span>" } ?? "")</td>"
            let replayed = instance.lastClaimedAt.map { event.recordedAt < $0 } ?? false
            body += "<td>\(instance.lastClaimedAt == nil ? "" : replayed ? "<span class=\"tag\">replayed</span>" : "executed")</td>"
            body += "<td>\(Self.attempts(event.retry))</td>"
            body += "<td>\(HTML.time(event.recordedAt))</td>"
            let detail = event.error.map { "\($0)" } ?? Self.retryRecord(event).map(Self.retrySummary) ?? event.payload?.json ?? ""
            body += "<td><code>\(HTML.escape(String(detail.prefix(500))))</code></td></tr>"
        }
        body += "</tbody></table>"
        if records.count > limit, let last = page.last {
            body += "<p><a href=\"/instances/\(HTML.pathComponent(id))?after=\(last.sequence)\(failedOnly ? "&amp;failed=true" : "")\">Next records →</a></p>"
        }
        body += "</div>"
        let live = instance.status.isTerminal ? nil : "/instances/\(Self.percentEncoded(id))/live?since=\(LivePages.signature(of: instance, children: children))"
        var response = self.page(title: "Edda — \(instance.instanceID)", body: body, status: status, live: live)
        for field in headers { response.headers.append(field) }
        return response
    }

    /// The children an instance's page shows (and its live stream follows): the first 20.
    static func childrenQuery(of id: String) -> InstanceQuery {
        var query = InstanceQuery(limit: 20)
        query.parentInstanceID = id
        return query
    }

    /// The first children of an instance, each with its status, and a link to the list of all of them.
    static func childrenSection(of id: String, _ children: InstancePage) -> String {
        guard !children.instances.isEmpty else { return "" }
        var html = "<h2>Children</h2><table id=\"children\"><thead><tr><th>Instance</th><th>Workflow</th><th>Status</th><th>Created</th></tr></thead><tbody>"
        for child in children.instances {
            html += "<tr><td><a href=\"/instances/\(HTML.pathComponent(child.instanceID))\">\(HTML.escape(child.instanceID))</a></td>"
            html += "<td>\(HTML.escape(child.workflowName))</td><td>\(HTML.badge(child.displayStatus))</td><td>\(HTML.time(child.createdAt))</td></tr>"
        }
        html += "</tbody></table>"
        if children.nextCursor != nil {
            html += "<p><a href=\"/?\(HTML.escape(HTML.query([URLQueryItem(name: "parent", value: id)])))\">All children →</a></p>"
        }
        return html
    }

    /// What a record stands for in the timeline, beyond running an activity.
    static func role(of kind: HistoryEventKind) -> String? {
        switch kind {
        case .compensationCompleted, .compensationFailed: "compensation"
        case .timerScheduled, .messageReceived, .waitTimedOut: "wait"
        case .childStarted: "child"
        case .valueRecorded: "value"
        case .messagePublished: "message"
        case .attemptFailed: "retrying"
        case .retried: "retried by hand"
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
            html += "<tr><td>\(HTML.time(event.recordedAt))</td><td>\(HTML.escape(record?.requestedBy ?? "?"))</td>"
            html += "<td>\(record?.step.map(HTML.escape) ?? "<small>(none: the workflow failed outside a step)</small>")</td><td>"
            if let failure = record?.failure {
                html += "<span class=\"tag\">archived</span> #\(failure.sequence), recorded \(HTML.time(failure.recordedAt)), "
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
        html += "<td>\(attempts(failure.retry))</td><td>\(HTML.time(failure.recordedAt))</td>"
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

    // MARK: - Starting

    func workflows() -> Response {
        let names = app.registeredWorkflowNames
        var body = "<p><a href=\"/\">← All instances</a></p><h1>Workflows</h1>"
        if names.isEmpty {
            body += "<p class=\"empty\">This app has no registered workflows.</p>"
        } else {
            body += "<ul>" + names.map { "<li><a href=\"/workflows/\(HTML.pathComponent($0))/start\">\(HTML.escape($0))</a></li>" }.joined() + "</ul>"
        }
        return self.page(title: "Edda — workflows", body: body)
    }

    func unknownWorkflow(_ name: String) -> Response {
        self.page(title: "Not found", body: "<h1>Not found</h1><p>No workflow named \(HTML.escape(name)) is registered.</p>", status: .notFound)
    }

    /// Starts an instance from the posted form, or shows the form again: with one more list element
    /// after "Add", or with the errors next to their fields.
    func start(_ request: Request, name: String) async throws -> Response {
        guard let shapes = app.inputShapes(ofWorkflowNamed: name) else { return unknownWorkflow(name) }
        let posted: [String: String]?
        do {
            posted = try await postedForm(request)
        } catch let error as APIError where error.status == .contentTooLarge {
            // The form could not be read: shown again empty, with the limit above it.
            var form = StartForm(shapes: shapes)
            form.errors[""] = error.message + " Nothing was started: enter shorter values."
            return startPage(name, form, request: request, status: .contentTooLarge)
        }
        guard var values = posted else { return Self.formRefused() }
        let instanceID = values.removeValue(forKey: "edda_instance_id").flatMap { $0.isEmpty ? nil : $0 }
        let adding = values.removeValue(forKey: "edda_add")
        values = values.filter { !$0.key.hasPrefix("edda_") && $0.key != "csrf" }
        var form = StartForm(shapes: shapes, values: values, adding: adding)
        if adding != nil { return startPage(name, form, request: request, instanceID: instanceID) }
        guard let input = form.input() else { return startPage(name, form, request: request, instanceID: instanceID, status: .unprocessableContent) }
        do {
            let id = try await app.start(
                workflowNamed: name, input: JSONPayload(data: try JSONSerialization.data(withJSONObject: input)), instanceID: instanceID
            )
            return Response(status: .seeOther, headers: [.location: "/instances/\(Self.percentEncoded(id))"])
        } catch let error as EngineError {
            form.place(error)
            let status: HTTPResponse.Status = error.code == .invalidInput ? .unprocessableContent : ErrorMiddleware<BasicRequestContext>.status(of: error.code)
            return startPage(name, form, request: request, instanceID: instanceID, status: status)
        } catch let error as StoreError {
            form.errors[""] = "The database did not take it: \(error.message) Try again."
            return startPage(name, form, request: request, instanceID: instanceID, status: .serviceUnavailable)
        }
    }

    func startPage(
        _ name: String, _ form: StartForm, request: Request, instanceID: String? = nil, status: HTTPResponse.Status = .ok
    ) -> Response {
        let (token, cookie) = Self.csrfToken(request)
        var body = "<p><a href=\"/workflows\">← Workflows</a></p><h1>Start \(HTML.escape(name))</h1>"
        if let message = form.errors[""] { body += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
        if form.errors.keys.contains(where: { !$0.isEmpty }) {
            body += "<p class=\"field-error\">Nothing was started: correct the fields marked below.</p>"
        }
        body += "<form method=\"post\" action=\"/workflows/\(HTML.pathComponent(name))/start\" class=\"start\">"
        body += "<input type=\"hidden\" name=\"csrf\" value=\"\(token)\">" + form.fields()
        body += "<div class=\"field\"><label>Instance ID <small>(optional: a new UUID otherwise)</small> "
        body += "<input name=\"edda_instance_id\" value=\"\(HTML.escape(instanceID ?? ""))\"></label></div>"
        body += "<button type=\"submit\" name=\"edda_start\" value=\"1\">Start</button></form>"
        var response = self.page(title: "Edda — start \(name)", body: body, status: status)
        if let cookie { response.headers[.setCookie] = cookie }
        return response
    }

    // MARK: - Forms

    /// The token a page's forms carry: the browser's `edda_csrf` cookie when it has one (so that
    /// pages open in several tabs all stay valid), or a new one with the cookie to set.
    static func csrfToken(_ request: Request) -> (token: String, setCookie: String?) {
        if let existing = request.headers[.cookie].flatMap({ cookie("edda_csrf", in: $0) }), UUID(uuidString: existing) != nil {
            return (existing, nil)
        }
        let token = UUID().uuidString
        return (token, "edda_csrf=\(token); Path=/; SameSite=Strict; HttpOnly")
    }

    /// The fields of a posted form, or `nil` unless its `csrf` field matches the `edda_csrf` cookie
    /// the page set: a form from another site carries neither our cookie's value nor our Origin
    /// (the latter is checked for every state-changing request by SameOriginMiddleware).
    func postedForm(_ request: Request) async throws -> [String: String]? {
        let form = Self.formFields(String(buffer: try await collectBody(request, upTo: maxBodyBytes)))
        let cookie = request.headers[.cookie].flatMap { Self.cookie("edda_csrf", in: $0) }
        guard let token = form["csrf"], let cookie, !token.isEmpty, token == cookie else { return nil }
        return form
    }

    /// The answer to a form without its token: nothing was done.
    static func formRefused() -> Response {
        HTML.page(
            title: "Edda — form refused",
            body: "<h1>Nothing was done</h1><p class=\"field-error\">This form's token does not match: it came from another site, "
                + "or its page is too old. Go back, reload the page, and try again.</p><p><a href=\"/\">All instances</a></p>",
            status: .forbidden
        )
    }

    /// An `application/x-www-form-urlencoded` body's fields (the last of a repeated name wins).
    static func formFields(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String { text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text) }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    /// A cookie's value in a `Cookie` header.
    static func cookie(_ name: String, in header: String) -> String? {
        header.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            .first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }

    /// An ID or name as one URL path segment: everything but unreserved characters and a few safe
    /// sub-delimiters is percent-encoded (`/`, `?`, `#`, `%`, space, non-ASCII), and so are the
    /// dots of `.` and `..`, which browsers would resolve as relative paths.
    static func percentEncoded(_ id: String) -> String {
        if id == "." || id == ".." { return String(repeating: "%2E", count: id.count) }
        return id.addingPercentEncoding(withAllowedCharacters: segmentAllowed) ?? id
    }

    private static let segmentAllowed: CharacterSet = {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/;")
        return allowed
    }()
}

/// HTML building, with every piece of user data escaped.
enum HTML {
    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    /// An instance ID as one URL path component (then HTML-escaped).
    static func pathComponent(_ text: String) -> String {
        escape(ViewerPages.percentEncoded(text))
    }

    static func query(_ items: [URLQueryItem]) -> String {
        var components = URLComponents()
        components.queryItems = items
        return components.percentEncodedQuery ?? ""
    }

    static func time(_ date: Date) -> String {
        escape(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false)))
    }

    static func badge(_ status: InstanceStatus) -> String {
        // A stored status may be any text (a newer version's, or edited by hand): escaped like user data.
        "<span class=\"badge \(HTML.escape(status.rawValue))\">\(HTML.escape(status.rawValue))</span>"
    }

    /// The pages' policy: nothing from elsewhere; the live pages' script and its event stream from
    /// this server only.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'self'"

    static func page(title: String, head: String = "", body: String, status: HTTPResponse.Status = .ok, live: String? = nil) -> Response {
        let liveAttribute = live.map { " data-live=\"\(escape($0))\"" } ?? ""
        let document = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title))</title>\(head)
            <style>\(style)</style></head><body\(liveAttribute)>\(body)</body></html>
            """
        return Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: contentSecurityPolicy],
            body: .init(byteBuffer: ByteBuffer(string: document))
        )
    }

    static let style = """
        body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
        th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}tr.failed{background:#fdecea}
        .badge{padding:1px 6px;border-radius:8px;font-size:12px;background:#eee}.badge.completed{background:#d4f7d4}
        .badge.failed{background:#f9c7c3}.badge.cancelled{background:#ddd}.badge.running{background:#d6e8fb}
        .badge.compensating{background:#fbe7c6}.badge.waiting{background:#e6dcfb}.waits{color:#555}pre{white-space:pre-wrap;margin:0}.error{color:#a00}dt{font-weight:bold}
        code{font-size:12px}fieldset{margin:6px 0;border:1px solid #ccc}.field{margin:4px 0}
        .field-error{color:#a00;font-weight:bold}.item{margin-left:1em}.tag{font-size:11px;background:#eef;padding:0 4px;border-radius:4px}
        .signout{float:right}.live{float:right;margin:0 1em;font-size:12px;color:#080}.live.off{color:#a60}tr.archived{opacity:.75}.warning{border-left:4px solid #e0a030;padding-left:8px}
        """
}

/// The steps an instance took, as an SVG the server renders: one box per step in history order,
/// coloured by its outcome.
enum Diagram {
    static func svg(_ history: [HistoryEvent]) -> String {
        var steps: [(id: String, kind: HistoryEventKind)] = []
        var index: [String: Int] = [:]
        for event in history where event.kind != .retried {
            if let at = index[event.stepID] {
                steps[at].kind = event.kind
            } else {
                index[event.stepID] = steps.count
                steps.append((event.stepID, event.kind))
            }
        }
        guard !steps.isEmpty else { return "<p>No steps yet.</p>" }
        let shown = steps.prefix(200)
        let (width, height, gap) = (150, 34, 20)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"steps\" width=\"\(min(shown.count, 6) * (width + gap))\""
        let rows = (shown.count + 5) / 6
        svg += " height=\"\(rows * (height + gap))\">"
        for (offset, step) in shown.enumerated() {
            let (x, y) = ((offset % 6) * (width + gap), (offset / 6) * (height + gap))
            let colour: String
            switch step.kind {
            case .activityFailed, .compensationFailed, .attemptFailed: colour = "#f9c7c3"
            case .compensationCompleted: colour = "#fbe7c6"
            case .waitTimedOut: colour = "#eee"
            case .timerScheduled, .messageReceived, .childStarted: colour = "#d6e8fb"
            default: colour = "#d4f7d4"
            }
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\" rx=\"6\" fill=\"\(colour)\" stroke=\"#888\"/>"
            let label = step.id.count > 22 ? String(step.id.prefix(21)) + "…" : step.id
            svg += "<text x=\"\(x + 8)\" y=\"\(y + 21)\" font-size=\"12\">\(HTML.escape(label))</text>"
            if offset % 6 != 5, offset + 1 < shown.count {
                svg += "<line x1=\"\(x + width)\" y1=\"\(y + height / 2)\" x2=\"\(x + width + gap)\" y2=\"\(y + height / 2)\" stroke=\"#888\"/>"
            }
        }
        return svg + "</svg>"
    }
}
