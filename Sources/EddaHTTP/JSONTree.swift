package import Edda
package import Foundation

/// A JSON value as the viewer shows it: a tree of nested `<details>` elements that fold without
/// any script, every key and string HTML-escaped.
///
/// The value is parsed once, by a small parser of its own that keeps the keys in their stored
/// order and numbers as written (`JSONSerialization` keeps neither). A string whose text is
/// itself a JSON object or array (an HTTP body kept as a string, a payload encoded twice) is shown
/// as that inner tree, tagged "JSON in a string", not as an escaped line. Strings longer than
/// ``foldLength`` fold into a `<details>` that shows their start; objects and arrays deeper than
/// ``openDepth`` or larger than ``openCount`` start folded, and past ``shownCount`` members the
/// rest is counted, not shown, so a large payload keeps the page small. Each value gets a Copy
/// button (hidden until `/static/viewer.js` shows it) that copies the whole value, pretty-printed.
/// Text that is not JSON is shown as text, folded when long.
package enum JSONTree {
    /// Strings longer than this fold.
    package static let foldLength = 200
    /// Objects and arrays this deep or deeper start folded (the top level is depth 0).
    package static let openDepth = 2
    /// Objects and arrays with more members than this start folded.
    package static let openCount = 20
    /// Members shown of one object or array; the rest are counted.
    package static let shownCount = 100

    /// A parsed value: keys in their order, numbers as written.
    package indirect enum Value: Equatable, Sendable {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        case number(String)
        case bool(Bool)
        case null

        package static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case (.object(let a), .object(let b)): a.map(\.key) == b.map(\.key) && a.map(\.value) == b.map(\.value)
            case (.array(let a), .array(let b)): a == b
            case (.string(let a), .string(let b)): a == b
            case (.number(let a), .number(let b)): a == b
            case (.bool(let a), .bool(let b)): a == b
            case (.null, .null): true
            default: false
            }
        }
    }

    // MARK: - HTML

    /// The value's tree with its Copy button, in a `<div class="json">`; `extraClass` marks it
    /// (`error`). Text that does not parse is shown as text.
    package static func html(_ json: String, extraClass: String? = nil) -> String {
        let classes = "json" + (extraClass.map { " " + HTML.escape($0) } ?? "")
        guard let value = parse(json) else {
            let copy = copyButton(json)
            return "<div class=\"\(classes)\">\(copy)\(string(json, quoted: false))</div>"
        }
        var html = "<div class=\"\(classes)\">" + copyButton(pretty(value))
        render(value, depth: 0, into: &html)
        return html + "</div>"
    }

    /// An error as a tree (its type, then its message: a message that holds JSON, such as a
    /// service's answer, shows as that tree).
    package static func html(error: ErrorRecord) -> String {
        html("{\"error_type\":\(quote(error.type)),\"message\":\(quote(error.message))}", extraClass: "error")
    }

    /// A button that copies `text`, kept (escaped, hidden) in the element after it; hidden without
    /// the script, which shows it.
    static func copyButton(_ text: String) -> String {
        "<button type=\"button\" class=\"copy\" title=\"Copy the value\" hidden>Copy</button><pre class=\"copy-text\" hidden>\(HTML.escape(text))</pre>"
    }

    static func render(_ value: Value, depth: Int, into html: inout String) {
        switch value {
        case .object(let members):
            guard !members.isEmpty else { html += "<span class=\"j-punct\">{}</span>"; return }
            container(open: "{", close: "}", count: members.count, noun: members.count == 1 ? "key" : "keys", depth: depth, into: &html) { html in
                for member in members.prefix(shownCount) {
                    html += "<li><span class=\"j-key\">\(HTML.escape(member.key))</span>: "
                    render(member.value, depth: depth + 1, into: &html)
                    html += "</li>"
                }
            }
        case .array(let elements):
            guard !elements.isEmpty else { html += "<span class=\"j-punct\">[]</span>"; return }
            let noun = elements.count == 1 ? "item" : "items"
            container(open: "[", close: "]", count: elements.count, noun: noun, depth: depth, into: &html) { html in
                for element in elements.prefix(shownCount) {
                    html += "<li>"
                    render(element, depth: depth + 1, into: &html)
                    html += "</li>"
                }
            }
        case .string(let text):
            if let inner = embedded(text) {
                html += "<span class=\"tag\" title=\"This string holds JSON: shown as its tree\">JSON in a string</span> "
                render(inner, depth: depth, into: &html)
            } else {
                html += string(text, quoted: true)
            }
        case .number(let text): html += "<span class=\"j-num\">\(HTML.escape(text))</span>"
        case .bool(let flag): html += "<span class=\"j-bool\">\(flag)</span>"
        case .null: html += "<span class=\"j-null\">null</span>"
        }
    }

    /// An object or array: a `<details>` whose summary counts its members, open near the top.
    private static func container(
        open: String, close: String, count: Int, noun: String, depth: Int, into html: inout String, members: (inout String) -> Void
    ) {
        let startsOpen = depth < openDepth && count <= openCount
        html += "<details class=\"j\"\(startsOpen ? " open" : "")><summary><span class=\"j-punct\">\(open)</span>"
        html += "<small class=\"j-count\">\(count) \(noun)</small><span class=\"j-punct j-tail\">\(close)</span></summary><ul class=\"j\">"
        members(&html)
        if count > shownCount { html += "<li class=\"j-more\">… \(count - shownCount) more (Copy gives them all)</li>" }
        html += "</ul><span class=\"j-punct\">\(close)</span></details>"
    }

    /// A string, escaped; folded into a `<details>` showing its start when it is long.
    static func string(_ text: String, quoted: Bool) -> String {
        let mark = quoted ? "&quot;" : ""
        guard text.count > foldLength else { return "<span class=\"j-str\">\(mark)\(HTML.escape(text))\(mark)</span>" }
        let start = HTML.escape(String(text.prefix(80)))
        return "<details class=\"j-long\"><summary><span class=\"j-str\">\(mark)\(start)…</span> <small>\(text.count) characters</small></summary>"
            + "<span class=\"j-str\">\(mark)\(HTML.escape(text))\(mark)</span></details>"
    }

    /// The JSON object or array a string holds, if its whole text is one.
    static func embedded(_ text: String) -> Value? {
        guard let first = text.utf8.first(where: { !isWhitespace($0) }), first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return nil }
        return parse(text)
    }

    // MARK: - Copy text

    /// The value as JSON, two spaces an indent, its keys in their order.
    package static func pretty(_ value: Value) -> String {
        var text = ""
        write(value, indent: "", into: &text)
        return text
    }

    private static func write(_ value: Value, indent: String, into text: inout String) {
        let inner = indent + "  "
        switch value {
        case .object(let members):
            guard !members.isEmpty else { text += "{}"; return }
            text += "{\n"
            for (index, member) in members.enumerated() {
                text += inner + quote(member.key) + ": "
                write(member.value, indent: inner, into: &text)
                text += index + 1 < members.count ? ",\n" : "\n"
            }
            text += indent + "}"
        case .array(let elements):
            guard !elements.isEmpty else { text += "[]"; return }
            text += "[\n"
            for (index, element) in elements.enumerated() {
                text += inner
                write(element, indent: inner, into: &text)
                text += index + 1 < elements.count ? ",\n" : "\n"
            }
            text += indent + "]"
        case .string(let string): text += quote(string)
        case .number(let number): text += number
        case .bool(let flag): text += flag ? "true" : "false"
        case .null: text += "null"
        }
    }

    static func quote(_ string: String) -> String {
        var text = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20: text += String(format: "\\u%04x", scalar.value)
            default: text.unicodeScalars.append(scalar)
            }
        }
        return text + "\""
    }

    // MARK: - Parsing

    /// Nesting deeper than this is not parsed (the text is then shown as text).
    static let maxDepth = 128

    /// The JSON value `text` holds, or `nil` if it is not exactly one JSON value.
    package static func parse(_ text: String) -> Value? {
        var parser = Parser(bytes: Array(text.utf8))
        guard let value = parser.value(depth: 0) else { return nil }
        parser.skipWhitespace()
        return parser.index == parser.bytes.count ? value : nil
    }

    static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipWhitespace() {
            while index < bytes.count, JSONTree.isWhitespace(bytes[index]) { index += 1 }
        }

        mutating func value(depth: Int) -> Value? {
            guard depth < JSONTree.maxDepth else { return nil }
            skipWhitespace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "{"): return object(depth: depth)
            case UInt8(ascii: "["): return array(depth: depth)
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "t"): return literal("true", .bool(true))
            case UInt8(ascii: "f"): return literal("false", .bool(false))
            case UInt8(ascii: "n"): return literal("null", .null)
            default: return number()
            }
        }

        mutating func literal(_ word: String, _ value: Value) -> Value? {
            let utf8 = Array(word.utf8)
            guard bytes.count - index >= utf8.count, Array(bytes[index..<index + utf8.count]) == utf8 else { return nil }
            index += utf8.count
            return value
        }

        mutating func object(depth: Int) -> Value? {
            index += 1
            var members: [(key: String, value: Value)] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                guard let value = value(depth: depth + 1) else { return nil }
                members.append((key, value))
                guard let more = separator(closing: UInt8(ascii: "}")) else { return nil }
                if !more { return .object(members) }
            }
        }

        mutating func array(depth: Int) -> Value? {
            index += 1
            var elements: [Value] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                guard let element = value(depth: depth + 1) else { return nil }
                elements.append(element)
                guard let more = separator(closing: UInt8(ascii: "]")) else { return nil }
                if !more { return .array(elements) }
            }
        }

        /// What follows a member: `,` (more follow: `true`), the closing bracket (`false`), or
        /// anything else (`nil`: not JSON).
        mutating func separator(closing: UInt8) -> Bool? {
            skipWhitespace()
            guard index < bytes.count else { return nil }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: ",") { return true }
            return byte == closing ? false : nil
        }

        /// A string at `index` (its opening quote), unescaped.
        mutating func string() -> String? {
            index += 1
            var scalars = String.UnicodeScalarView()
            var run = index   // the start of the bytes copied as they are
            func flush(_ end: Int) -> Bool {
                guard let text = String(validating: bytes[run..<end], as: UTF8.self) else { return false }
                scalars.append(contentsOf: text.unicodeScalars)
                return true
            }
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    guard flush(index) else { return nil }
                    index += 1
                    return String(scalars)
                }
                guard byte >= 0x20 else { return nil }
                guard byte == UInt8(ascii: "\\") else {
                    index += 1
                    continue
                }
                guard flush(index), index + 1 < bytes.count else { return nil }
                let escape = bytes[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{8}")
                case UInt8(ascii: "f"): scalars.append("\u{C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    guard var code = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(code), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    // A lone surrogate is not a character: shown as the replacement character.
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default: return nil
                }
                run = index
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else { return nil }
            index += 4
            return code
        }

        /// A number as written, checked against JSON's grammar.
        mutating func number() -> Value? {
            let start = index
            func digits() -> Int {
                let from = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                return index - from
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            let integer = index
            guard digits() > 0 else { return nil }
            if bytes[integer] == UInt8(ascii: "0"), index - integer > 1 { return nil }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digits() > 0 else { return nil }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { return nil }
            }
            return .number(String(decoding: bytes[start..<index], as: UTF8.self))
        }
    }
}
