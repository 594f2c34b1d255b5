import Edda
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

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
