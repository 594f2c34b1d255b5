import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization

/// The viewer's live pages: a page that can change (an unfinished instance's, the list) names a
/// Server-Sent Events stream in its `<body data-live="…">` and loads `/static/live.js`, a small
/// script the server itself serves (the pages' Content-Security-Policy allows exactly
/// `script-src 'self'` and `connect-src 'self'`). The stream polls the store every
/// ``EddaHTTP/Configuration-swift.struct/livePollInterval`` (one read per interval per open
/// page, never tighter) and sends a `change` event when what the page shows has changed; the
/// script then fetches the same URL and swaps only the page's `data-live-part` fragments (the
/// status, the summary with what it waits for, the actions, the children, the history, the list's
/// rows), shows a "live" indicator, and stops at the stream's `end` event, sent once the instance
/// has finished. The streams go through the same middleware as every page (Host check, token or
/// session). Without JavaScript nothing of this runs, and the pages work as before (`?refresh=5`).
struct LivePages: Sendable {
    let app: EddaApp
    let interval: Duration
    /// How long one stream lasts at most: then it ends without `end`, and the browser's
    /// `EventSource` connects again (after the `retry:` the stream gave), so a stream never outlives
    /// a session by much.
    let lifetime: Duration
    /// Counts the open streams, for tests.
    let counter: LiveStreamCounter?

    func register<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        routes.on("/instances/:id/live", .get) { request, context in
            let id = try context.parameters.decoded("id")
            guard try await app.instance(id) != nil else {
                throw APIError(status: .notFound, type: "not_found", message: "No workflow instance has ID \(id).")
            }
            return stream(since: request.uri.queryParameters.get("since")) { try await instanceState(id) }
        }
        routes.on("/live", .get) { request, _ in
            let (parsed, errors) = APIRoutes.filter(request, emptyValueIsAbsent: true)
            if let error = errors.first { throw error }
            var filter = parsed
            filter.limit = 50   // the list's page size
            let query = filter
            return stream(since: request.uri.queryParameters.get("since")) { try await listState(query) }
        }
    }

    /// What a page shows, reduced to a signature that changes when it does, and whether it is final.
    struct State: Equatable {
        var signature: String
        var status: String
        var finished: Bool
    }

    func instanceState(_ id: String) async throws -> State {
        guard let instance = try await app.instance(id) else { return State(signature: "removed", status: "removed", finished: true) }
        let children = try await app.instances(matching: ViewerPages.childrenQuery(of: id))
        return State(
            signature: Self.signature(of: instance, children: children), status: instance.displayStatus.rawValue, finished: instance.status.isTerminal
        )
    }

    func listState(_ filter: InstanceQuery) async throws -> State {
        State(signature: Self.signature(of: try await app.instances(matching: filter)), status: "", finished: false)
    }

    /// What an instance's page shows that can change: its status, what it waits for, its last
    /// update, its first children's statuses. The page sends it with its stream's URL (`since`), so
    /// that the stream's first reading, when it matches, sends nothing: the browser fetches the
    /// page again only after a change.
    static func signature(of instance: WorkflowInstance, children: InstancePage) -> String {
        let wait = instance.waitingFor.map { "\($0)" } ?? ""
        return fingerprint(
            "\(instance.displayStatus.rawValue)|\(instance.updatedAt.timeIntervalSince1970)|\(instance.cancelRequested)|\(wait)|" + rows(children)
        )
    }

    /// What the list's rows show that can change.
    static func signature(of page: InstancePage) -> String {
        fingerprint(rows(page))
    }

    static func rows(_ page: InstancePage) -> String {
        let rows = page.instances.map { "\($0.instanceID)|\($0.displayStatus.rawValue)|\($0.updatedAt.timeIntervalSince1970)" }
        return rows.joined(separator: "\n") + "|\(page.nextCursor.map { "\($0)" } ?? "")|\(page.previousCursor.map { "\($0)" } ?? "")"
    }

    /// A short, stable digest (64-bit FNV-1a, hex): the same in every process, unlike `Hasher`.
    static func fingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// An event stream: a `change` event whenever the state's signature differs from the last one
    /// sent (at first, from `since`, the one the page was rendered with; a comment otherwise, so
    /// that a browser that has gone is noticed at the next write), and `end` once it is final.
    func stream(since: String?, _ read: @escaping @Sendable () async throws -> State) -> Response {
        let (interval, lifetime, counter) = (interval, lifetime, counter)
        let body = ResponseBody { writer in
            counter?.open.add(1, ordering: .relaxed)
            defer { counter?.open.subtract(1, ordering: .relaxed) }
            let clock = ContinuousClock()
            let until = clock.now.advanced(by: lifetime)
            var last = since
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            while true {
                let state = try await read()
                if state.finished || state.signature != last {
                    let data = "{\"status\":\(Self.jsonString(state.status))}"
                    try await writer.write(ByteBuffer(string: "event: \(state.finished ? "end" : "change")\ndata: \(data)\n\n"))
                    last = state.signature
                } else {
                    try await writer.write(ByteBuffer(string: ":\n\n"))
                }
                if state.finished || clock.now >= until { break }
                try await Task.sleep(for: interval)
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-store", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: body
        )
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [])) ?? Data("[\"\"]".utf8)
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    /// The script: follows the stream the page names, re-fetches the page on `change` and `end`,
    /// and replaces each `data-live-part` element whose content differs (not one holding the
    /// focus, so a form being filled in is left alone).
    static let script = """
        (function () {
          "use strict";
          var source = document.body.getAttribute("data-live");
          var indicator = document.getElementById("live");
          if (!source || !window.EventSource || !window.fetch || !indicator) return;
          function show(state, text) { indicator.hidden = false; indicator.className = "live " + state; indicator.textContent = text; }
          var busy = false, again = false;
          function refresh() {
            if (busy) { again = true; return; }
            busy = true;
            fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
              .then(function (response) { return response.ok ? response.text() : null; })
              .then(function (html) {
                if (html === null) return;
                var fresh = new DOMParser().parseFromString(html, "text/html");
                var parts = document.querySelectorAll("[data-live-part]");
                for (var i = 0; i < parts.length; i++) {
                  var part = parts[i], next = fresh.getElementById(part.id);
                  if (!next || next.innerHTML === part.innerHTML || part.contains(document.activeElement)) continue;
                  part.replaceWith(document.importNode(next, true));
                }
                document.title = fresh.title;
              })
              .catch(function () {})
              .then(function () { busy = false; if (again) { again = false; refresh(); } });
          }
          var events = new EventSource(source);
          show("on", "\\u25CF live");
          events.addEventListener("open", function () { show("on", "\\u25CF live"); });
          events.addEventListener("change", refresh);
          events.addEventListener("end", function () { events.close(); show("off", "finished"); refresh(); });
          events.addEventListener("error", function () {
            if (events.readyState === EventSource.CLOSED) show("off", "not live: reload the page");
            else show("off", "reconnecting\\u2026");
          });
        })();
        """
}

/// How many live streams are open (tests check that a stream whose browser has gone stops).
final class LiveStreamCounter: Sendable {
    let open = Atomic<Int>(0)
    var count: Int { open.load(ordering: .relaxed) }
}
