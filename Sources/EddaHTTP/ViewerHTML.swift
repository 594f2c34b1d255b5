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

    /// A time as ISO 8601 in UTC (`2026-11-25T08:00:00Z`), for attributes and titles.
    static func time(_ date: Date) -> String {
        escape(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false)))
    }

    /// A time as the pages show it: `<time>` in UTC (`2026-11-25 08:00:00 UTC`), how long ago on
    /// hover. `/static/viewer.js` shows it in the browser's time zone instead when the reader chose
    /// "Local", and keeps the hover text current.
    static func timeTag(_ date: Date, now: Date = Date()) -> String {
        let iso = time(date)
        let text = iso.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
        return "<time datetime=\"\(iso)\" title=\"\(escape(WaitText.relative(date, now: now)))\">\(text)</time>"
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
        .zone{float:right;font-size:12px;margin:0 1em}.zone button{font-size:11px}.zone button[aria-pressed=true]{font-weight:bold}
        .json{font:12px ui-monospace,monospace}.json .copy{float:right;font-size:11px;margin-left:6px}.json pre{font:inherit}
        details.j{display:inline-block;vertical-align:top}details.j>summary{cursor:pointer}ul.j{list-style:none;margin:0;padding-left:1.4em}
        .j-count{color:#777;margin:0 4px}details.j[open]>summary>.j-count,details.j[open]>summary>.j-tail{display:none}
        .j-key{color:#7a1f7a}.j-str{color:#1a3ea6;white-space:pre-wrap;word-break:break-word}.j-num{color:#16704a}.j-bool,.j-null{color:#a0522d}
        details.j-long{display:inline}details.j-long>summary{cursor:pointer;display:inline}.copy-area{position:fixed;left:-9999px;top:0}
        .tl{margin:4px 0 12px}.tl-note{font-size:12px;color:#444}.tl-row{display:grid;grid-template-columns:20em 1fr 6em;gap:8px;align-items:center;font-size:12px;line-height:18px}
        .tl-label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.tl-dur{text-align:right;color:#555}.tl-bar{width:100%;height:12px;display:block;background:#f4f4f4}
        .tl-ticks{display:flex;justify-content:space-between;color:#777;font-size:11px;border-bottom:1px solid #ccc}
        details.tl-group>summary{cursor:pointer;list-style:none}details.tl-group>summary::-webkit-details-marker{display:none}
        details.tl-group>summary .tl-label::before{content:"\\25B8  "}details.tl-group[open]>summary .tl-label::before{content:"\\25BE  "}
        .tl-members{margin-left:1em;border-left:2px solid #ddd;padding-left:4px}.tl-key{display:inline-block;width:12px;height:10px;margin:0 3px 0 8px;vertical-align:middle}
        .tl-ok{fill:#6fbf73;background:#6fbf73}.tl-failed{fill:#e06666;background:#e06666}.tl-backoff{fill:#bbb;background:#ccc}
        .tl-compensation{fill:#f0a848;background:#f0a848}.tl-child{fill:#6fa8dc;background:#6fa8dc}.tl-value{fill:#c4c4c4;background:#c4c4c4}
        .tl-wait{fill:#b9a3e3;background:#b9a3e3;stroke:#5b3fa0;stroke-width:1;stroke-dasharray:3 2;vector-effect:non-scaling-stroke}
        .tl-span{opacity:.3}.tl-open{opacity:.6}.tag-compensation{background:#fbe7c6}.tag-wait{background:#e6dcfb}
        """
}
