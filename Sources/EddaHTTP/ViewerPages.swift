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
/// history), the timeline of its steps (``Timeline``), its values as JSON trees (``JSONTree``) and
/// its history a page at a time, the latest first. Times are UTC `<time>` elements that
/// `/static/viewer.js` can show in the browser's zone (``ViewerScript``). Its errors are pages
/// too (``errorPage(_:signsIn:)``), with a field's error next to it.
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
        routes.on("/queues", .get) { _, _ in try await queuesPage() }
        routes.on("/schedules", .get) { _, _ in try await schedulesPage() }
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
        registerFork(on: &routes)
    }

    /// A viewer page, with Sign out when the server takes a token.
    func page(title: String, head: String = "", body: String, status: HTTPResponse.Status = .ok, live: String? = nil) -> Response {
        Self.page(title: title, head: head, body: body, status: status, signsIn: signsIn, live: live)
    }

    /// `live`: the page's event stream (``LivePages``), which `/static/live.js` follows, showing
    /// the hidden "live" indicator; without JavaScript the page stays as served. Every page loads
    /// `/static/viewer.js` (``ViewerScript``): the time-zone choice and the Copy buttons.
    static func page(
        title: String, head: String = "", body: String, status: HTTPResponse.Status = .ok, signsIn: Bool, live: String? = nil
    ) -> Response {
        let signOut = signsIn ? "<form method=\"post\" action=\"/logout\" class=\"signout\"><button type=\"submit\">Sign out</button></form>" : ""
        let indicator = live == nil ? "" : "<span id=\"live\" class=\"live\" hidden></span>"
        var scripts = "<script src=\"/static/viewer.js\" defer></script>"
        if live != nil { scripts += "<script src=\"/static/live.js\" defer></script>" }
        return HTML.page(
            title: title, head: head + scripts, body: signOut + ViewerScript.zoneToggle + indicator + body, status: status, live: live
        )
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

        var body = "<p><a href=\"/workflows\">Start a workflow →</a> · <a href=\"/queues\">Queues →</a> · <a href=\"/schedules\">Schedules →</a></p><h1>Workflow instances</h1>"
        if let parent = filter.parentInstanceID {
            body += "<p>Children of <a href=\"/instances/\(HTML.pathComponent(parent))\">\(HTML.escape(parent))</a> · <a href=\"/\">all instances</a></p>"
        }
        if let version = filter.applicationVersions?.first ?? nil {
            body += "<p id=\"of-version\">Of application version \(HTML.escape(version)) · <a href=\"/\">all instances</a></p>"
        }
        if let queue = filter.queue {
            body += "<p id=\"on-queue\">On queue <a href=\"/queues\">\(HTML.escape(queue))</a> · <a href=\"/\">all instances</a></p>"
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
        if let queue = filter.queue { body += "<input type=\"hidden\" name=\"queue\" value=\"\(HTML.escape(queue))\">" }
        if let version = filter.applicationVersions?.first ?? nil {
            body += "<input type=\"hidden\" name=\"version\" value=\"\(HTML.escape(version))\">"
        }
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
                let queue = instance.queue.map { " <small class=\"waits\">on \(HTML.escape($0))</small>" } ?? ""
                body += "<td>\(HTML.escape(instance.workflowName))</td><td>\(HTML.badge(instance.displayStatus))\(queue)\(waiting)\(warning)</td>"
                body += "<td>\(HTML.timeTag(instance.createdAt))</td><td>\(HTML.timeTag(instance.updatedAt))</td></tr>"
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
        let now = Date()
        var body = "<p><a href=\"/\">← All instances</a></p>"
        // The parts marked data-live-part are what the live script swaps (``LivePages``).
        body += "<div id=\"title\" data-live-part><h1>\(HTML.escape(instance.instanceID)) \(HTML.badge(instance.displayStatus))</h1></div>"
        body += "<dl id=\"summary\" data-live-part><dt>Workflow</dt><dd>\(HTML.escape(instance.workflowName)) (service \(HTML.escape(instance.serviceName)), run \(instance.runNumber))</dd>"
        if let parent = instance.parentInstanceID {
            let parentStatus = try await app.instance(parent).map { " " + HTML.badge($0.displayStatus) } ?? " <small>(removed)</small>"
            body += "<dt>Parent</dt><dd id=\"parent\"><a href=\"/instances/\(HTML.pathComponent(parent))\">\(HTML.escape(parent))</a>\(parentStatus)</dd>"
        }
        body += try await queueSummary(of: instance)
        body += try await forkSummary(of: instance)
        if let version = instance.applicationVersion {
            // Linked to the instances of the same version: those its workers run.
            let link = "/?" + HTML.query([URLQueryItem(name: "version", value: version)])
            body += "<dt>Version</dt><dd id=\"version\"><a href=\"\(HTML.escape(link))\">\(HTML.escape(version))</a></dd>"
        }
        body += "<dt>Created</dt><dd>\(HTML.timeTag(instance.createdAt))</dd><dt>Updated</dt><dd>\(HTML.timeTag(instance.updatedAt))</dd>"
        if let problem = instance.unreadable { body += "<dt>Unreadable</dt><dd class=\"error\">\(HTML.escape(problem))</dd>" }
        if let wait = instance.waitingFor {
            body += "<dt>Waiting for</dt><dd id=\"waiting\">\(WaitText.summary(wait, now: now) { "<code>\(HTML.escape($0))</code>" })"
            if let deadline = wait.deadline {
                body += "<br><small>deadline \(HTML.timeTag(deadline, now: now)) (\(HTML.escape(WaitText.relative(deadline, now: now))))</small>"
            }
            body += "</dd>"
        }
        if let deadline = WaitText.deadline(of: instance, now: now) {
            body += "<dt>Timeout</dt><dd id=\"deadline\">\(HTML.escape(deadline))"
            if let at = instance.deadline, !instance.status.isTerminal { body += "<br><small>deadline \(HTML.timeTag(at, now: now))</small>" }
            body += "</dd>"
        }
        if let reason = WaitText.cancellationReason(of: instance) {
            body += "<dt>Cancelled</dt><dd id=\"cancellation-reason\" class=\"error\">\(HTML.escape(reason))</dd>"
        }
        body += "<dt>Input</dt><dd>\(JSONTree.html(instance.input.json))</dd>"
        if let output = instance.output { body += "<dt>Output</dt><dd>\(JSONTree.html(output.json))</dd>" }
        if let error = instance.error { body += "<dt>Error</dt><dd>\(JSONTree.html(error: error))</dd>" }
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
        body += "<div id=\"forks-part\">" + (try await forksSection(of: id)) + "</div>"
        body += "<div id=\"history-part\" data-live-part>" + (try await historySection(request, instance: instance, now: now)) + "</div>"
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
            html += "<td>\(HTML.escape(child.workflowName))</td><td>\(HTML.badge(child.displayStatus))</td><td>\(HTML.timeTag(child.createdAt))</td></tr>"
        }
        html += "</tbody></table>"
        if children.nextCursor != nil {
            html += "<p><a href=\"/?\(HTML.escape(HTML.query([URLQueryItem(name: "parent", value: id)])))\">All children →</a></p>"
        }
        return html
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
        var form = StartForm(shapes: shapes, values: values.filter { !$0.key.hasPrefix("edda_") && $0.key != "csrf" }, adding: adding)
        form.options = values.filter { StartForm.OptionField.all.contains($0.key) }
        if adding != nil { return startPage(name, form, request: request, instanceID: instanceID) }
        let input = form.input()
        guard let options = form.readOptions(), let input else {
            return startPage(name, form, request: request, instanceID: instanceID, status: .unprocessableContent)
        }
        do {
            let id = try await app.start(
                workflowNamed: name, input: JSONPayload(data: try JSONSerialization.data(withJSONObject: input)), instanceID: instanceID,
                queue: options.queue, priority: options.priority, deduplicationID: options.deduplicationID, partitionKey: options.partitionKey,
                timeout: options.timeout
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
        body += form.optionFields(queues: app.registry.queues)
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
