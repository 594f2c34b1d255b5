import Edda
import Foundation
import HTTPTypes
import Hummingbird

/// Forking from the viewer: where an instance came from, its forks, and a page that asks first.
extension ViewerPages {
    func registerFork<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/instances/:id/fork", .get) { request, context in try await forkPage(request, id: try context.parameters.decoded("id")) }
        routes.on("/instances/:id/fork", .post) { request, context in
            let id = try context.parameters.decoded("id")
            guard let form = try await postedForm(request) else { return Self.formRefused() }
            // Only the confirmation page's form forks; any other post shows that page.
            guard form["confirm"] == "yes", let step = form["step"], !step.isEmpty else { return try await forkPage(request, id: id) }
            do {
                let fork = try await app.fork(id, fromStep: step)
                return Response(status: .seeOther, headers: [.location: "/instances/\(Self.percentEncoded(fork.instanceID))"])
            } catch let error as EngineError where error.code == .stepNotFound || error.code == .forkRefused {
                return try await forkPage(request, id: id, refusal: error.message)
            }
        }
    }

    /// The summary lines of a fork (where it came from) and the link to the fork page, on an instance's page.
    func forkSummary(of instance: WorkflowInstance) async throws -> String {
        guard let original = instance.forkedFrom else { return "" }
        let status = try await app.instance(original).map { " " + HTML.badge($0.displayStatus) } ?? " <small>(removed)</small>"
        return "<dt>Forked from</dt><dd id=\"forked-from\"><a href=\"/instances/\(HTML.pathComponent(original))\">\(HTML.escape(original))</a>"
            + "\(status) at step <code>\(HTML.escape(instance.forkedFromStep ?? "?"))</code></dd>"
    }

    /// The instance's forks (the first 20), and the button to fork it.
    func forksSection(of id: String) async throws -> String {
        var query = InstanceQuery(limit: 20)
        query.forkedFrom = id
        let forks = try await app.instances(matching: query).instances
        var html = "<form method=\"get\" action=\"/instances/\(HTML.pathComponent(id))/fork\"><button type=\"submit\">Fork from a step…</button></form>"
        guard !forks.isEmpty else { return html }
        html += "<h2>Forks</h2><table id=\"forks\"><thead><tr><th>Instance</th><th>From step</th><th>Status</th><th>Created</th></tr></thead><tbody>"
        for fork in forks {
            html += "<tr><td><a href=\"/instances/\(HTML.pathComponent(fork.instanceID))\">\(HTML.escape(fork.instanceID))</a></td>"
            html += "<td><code>\(HTML.escape(fork.forkedFromStep ?? "?"))</code></td><td>\(HTML.badge(fork.displayStatus))</td>"
            html += "<td>\(HTML.timeTag(fork.createdAt))</td></tr>"
        }
        return html + "</tbody></table>"
    }

    /// Asks before forking: which step to run again from, what runs again, what of the original stays.
    func forkPage(_ request: Request, id: String, refusal: String? = nil) async throws -> Response {
        guard let instance = try await app.instance(id) else { throw APIError.notFound("No workflow instance has ID \(id).", field: "id") }
        let history = try await app.history(of: id)
        let steps = history.stepIDs
        let chosen = request.uri.queryParameters.get("step") ?? steps.last
        let link = "/instances/\(HTML.pathComponent(id))"
        var body = "<p><a href=\"\(link)\">← \(HTML.escape(id))</a></p><h1>Fork \(HTML.escape(id))</h1>"
        body += "<p>A new instance of \(HTML.escape(instance.workflowName)) with the same input starts with a copy of this one's history "
            + "before the step you choose: it replays those records and runs that step and what follows with the code of the app that "
            + "runs it. This instance is not changed.</p>"
        if let refusal { body += "<p class=\"field-error\" id=\"fork-refused\">\(HTML.escape(refusal))</p>" }
        guard !steps.isEmpty else {
            return self.page(title: "Edda — fork \(id)", body: body + "<p class=\"field-error\">It has recorded no step yet: there is nothing to fork from.</p>")
        }
        if let chosen, let index = steps.firstIndex(of: chosen) {
            let rerun = steps[index...]
            body += "<p id=\"rerun\">From <code>\(HTML.escape(chosen))</code>, \(rerun.count) recorded step\(rerun.count == 1 ? "" : "s") run again: "
                + rerun.prefix(10).map { "<code>\(HTML.escape($0))</code>" }.joined(separator: ", ") + (rerun.count > 10 ? ", …" : "")
                + ". What they did here — calls to other services, database writes of transactional steps, outbox events — is not undone.</p>"
        }
        body += noWorkerNote(instance.workflowName, retrying: false)
        let (token, cookie) = Self.csrfToken(request)
        body += "<form method=\"post\" action=\"\(link)/fork\"><input type=\"hidden\" name=\"csrf\" value=\"\(token)\">"
        body += "<input type=\"hidden\" name=\"confirm\" value=\"yes\"><label>Run again from step <select name=\"step\">"
        for step in steps {
            body += "<option value=\"\(HTML.escape(step))\"\(step == chosen ? " selected" : "")>\(HTML.escape(step))</option>"
        }
        body += "</select></label> <button type=\"submit\">Fork</button> <a href=\"\(link)\">Back, without forking</a></form>"
        var response = self.page(title: "Edda — fork \(id)", body: body, status: refusal == nil ? .ok : .conflict)
        if let cookie { response.headers[.setCookie] = cookie }
        return response
    }
}
