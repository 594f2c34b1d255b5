import Edda
import Foundation

/// The viewer's start form, generated from a workflow's argument shapes (``InputShape``), and the
/// way back: the posted form into the workflow's JSON input, with an error per field.
///
/// Field names are paths: `a0` is the first argument, `a0.shipTo.zip` a field of it, `a0.lines.2.sku`
/// the third element of a list. Lists grow with an "Add" button that posts the form back (the
/// pages run no script). Every select starts empty, so a value is only sent when chosen, and an
/// optional object or list element whose fields are all empty is left out.
struct StartForm {
    let shapes: [InputShape]
    /// The posted values by field name (empty when the form is shown for the first time).
    var values: [String: String] = [:]
    /// The posted options by field name (``OptionField``): queue, priority, timeout…
    var options: [String: String] = [:]
    /// Messages by field name; `""` holds those about the whole input.
    var errors: [String: String] = [:]
    /// The list field whose "Add" button was pressed.
    var adding: String?
    /// For each list read from the form, the form row of each element (blank rows are left out).
    private var listRows: [String: [Int]] = [:]

    init(shapes: [InputShape], values: [String: String] = [:], adding: String? = nil) {
        self.shapes = shapes
        self.values = values
        self.adding = adding
    }

    // MARK: - Rendering

    func fields() -> String {
        var html = ""
        for (index, shape) in shapes.enumerated() {
            let label = shapes.count == 1 ? "Input" : "Argument \(index + 1)"
            html += field(shape, path: "a\(index)", label: label)
        }
        return html
    }

    private func field(_ shape: InputShape, path: String, label: String) -> String {
        let optional = shape.isOptional
        let caption = HTML.escape(label) + (optional ? " <small>(optional)</small>" : "")
        let name = HTML.escape(path)
        let value = HTML.escape(values[path] ?? "")
        var html: String
        switch shape.unwrapped {
        case .string:
            html = "<label>\(caption) <input name=\"\(name)\" value=\"\(value)\"></label>"
        case .integer:
            html = "<label>\(caption) <input name=\"\(name)\" inputmode=\"numeric\" value=\"\(value)\"></label>"
        case .number:
            html = "<label>\(caption) <input name=\"\(name)\" inputmode=\"decimal\" value=\"\(value)\"></label>"
        case .date:
            html = "<label>\(caption) <input name=\"\(name)\" type=\"datetime-local\" step=\"1\" value=\"\(value)\"> UTC</label>"
        case .boolean:
            html = "<label>\(caption) " + select(name: path, options: [("true", "true"), ("false", "false")]) + "</label>"
        case .oneOf(let cases):
            let options = cases.enumerated().map { (String($0.offset), Self.caseLabel($0.element)) }
            html = "<label>\(caption) " + select(name: path, options: options) + "</label>"
        case .dictionary, .json:
            let hint = shape.unwrapped == .json ? "JSON" : "a JSON object"
            html = "<label>\(caption) <small>(\(hint))</small><br><textarea name=\"\(name)\" rows=\"3\" cols=\"50\">\(value)</textarea></label>"
        case .object(let fields):
            html = "<fieldset><legend>\(caption)</legend>"
            if let message = errors[path] { html += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
            for field in fields {
                html += self.field(field.shape, path: Self.child(path, field.name), label: field.name)
            }
            return html + "</fieldset>"
        case .list(let element):
            html = "<fieldset class=\"list\"><legend>\(caption)</legend>"
            if let message = errors[path] { html += "<p class=\"field-error\">\(HTML.escape(message))</p>" }
            for index in 0..<rows(of: path) {
                html += "<div class=\"item\">" + field(element, path: Self.child(path, String(index)), label: "\(label) #\(index + 1)") + "</div>"
            }
            html += "<button type=\"submit\" name=\"edda_add\" value=\"\(name)\">Add to \(HTML.escape(label))</button>"
            return html + "</fieldset>"
        case .optional:
            html = ""   // unwrapped never is
        }
        if let message = errors[path] { html += " <span class=\"field-error\">\(HTML.escape(message))</span>" }
        return "<div class=\"field\">\(html)</div>"
    }

    private func select(name: String, options: [(value: String, label: String)]) -> String {
        let chosen = values[name] ?? ""
        var html = "<select name=\"\(HTML.escape(name))\"><option value=\"\">—</option>"
        for option in options {
            html += "<option value=\"\(HTML.escape(option.value))\"\(option.value == chosen ? " selected" : "")>\(HTML.escape(option.label))</option>"
        }
        return html + "</select>"
    }

    /// The most elements a list takes from the form: the rest of a larger post is ignored.
    static let maxListRows = 200

    /// How many elements a list shows: those posted, at least one, and one more when "Add" was pressed.
    private func rows(of path: String) -> Int {
        let posted = values.keys.compactMap { key -> Int? in
            guard key.hasPrefix(path + ".") else { return nil }
            return Int(key.dropFirst(path.count + 1).prefix { $0 != "." }).flatMap { (0..<Self.maxListRows).contains($0) ? $0 : nil }
        }
        return min(max(posted.max().map { $0 + 1 } ?? 1, 1) + (adding == path ? 1 : 0), Self.maxListRows)
    }

    static func caseLabel(_ payload: JSONPayload) -> String {
        (try? JSONSerialization.jsonObject(with: payload.data, options: .fragmentsAllowed) as? String) ?? payload.json
    }

    /// A field's path below `path`: keys are escaped so that a `.` in one cannot split it.
    static func child(_ path: String, _ key: String) -> String {
        path + "." + key.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ".", with: "%2E")
    }

    // MARK: - Reading the posted form

    /// The workflow's input (one JSON value per argument), or the errors by field name.
    mutating func input() -> [Any]? {
        var arguments: [Any] = []
        for (index, shape) in shapes.enumerated() {
            arguments.append(value(shape, path: "a\(index)") ?? NSNull())
        }
        return errors.isEmpty ? arguments : nil
    }

    /// The value at `path`, `nil` when it is left out (an optional left empty), recording errors.
    private mutating func value(_ shape: InputShape, path: String) -> Any? {
        if shape.isOptional, isEmpty(path) { return nil }
        let text = (values[path] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        func fail(_ message: String) -> Any? {
            errors[path] = message
            return nil
        }
        switch shape.unwrapped {
        case .string:
            return values[path] ?? ""
        case .integer:
            guard !text.isEmpty else { return fail("is required") }
            return Int64(text).map { $0 as Any } ?? fail("must be a whole number, not '\(text)'")
        case .number:
            guard !text.isEmpty else { return fail("is required") }
            return Double(text).flatMap { $0.isFinite ? $0 as Any : nil } ?? fail("must be a number, not '\(text)'")
        case .boolean:
            switch text {
            case "true": return true
            case "false": return false
            default: return fail("choose true or false")
            }
        case .date:
            guard !text.isEmpty else { return fail("is required") }
            return Self.date(text).map { $0.timeIntervalSinceReferenceDate as Any } ?? fail("must be a date and time, like 2026-11-25T14:30:00")
        case .oneOf(let cases):
            guard let index = Int(text), cases.indices.contains(index),
                let value = try? JSONSerialization.jsonObject(with: cases[index].data, options: .fragmentsAllowed)
            else { return fail("choose one of the options") }
            return value
        case .dictionary, .json:
            guard !text.isEmpty else { return fail("is required (as JSON)") }
            guard let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed) else {
                return fail("is not valid JSON")
            }
            if case .dictionary = shape.unwrapped, !(value is [String: Any]) { return fail("must be a JSON object") }
            return value
        case .object(let fields):
            var object: [String: Any] = [:]
            for field in fields {
                if let value = value(field.shape, path: Self.child(path, field.name)) { object[field.name] = value }
            }
            return object
        case .list(let element):
            var list: [Any] = []
            var taken: [Int] = []
            for index in 0..<rows(of: path) {
                let item = Self.child(path, String(index))
                // An element left empty is not one: the form always shows a blank row.
                if isEmpty(item) { continue }
                list.append(value(element, path: item) ?? NSNull())
                taken.append(index)
            }
            listRows[path] = taken
            return list
        case .optional:
            return nil
        }
    }

    /// Whether nothing was entered at `path` or below it.
    private func isEmpty(_ path: String) -> Bool {
        values.allSatisfy { key, value in
            !(key == path || key.hasPrefix(path + ".")) || value.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        }
    }

    /// A `datetime-local` value (seconds optional) in UTC, or a full ISO 8601 date.
    static func date(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        for suffix in [":00Z", "Z"] {
            if let date = try? Date(text + suffix, strategy: .iso8601) { return date }
        }
        return nil
    }

    // MARK: - Errors from the engine

    /// Puts a rejected start's reason next to the field it names (a ``ValidationError``'s field, a
    /// `DecodingError`'s coding path), or above the form.
    mutating func place(_ error: any Error) {
        if let engine = error as? EngineError, let field = optionField(of: engine) {
            errors[field] = engine.message
            return
        }
        let cause = (error as? EngineError)?.cause ?? error
        if let validation = cause as? ValidationError, let field = validation.field, let path = path(named: field) {
            errors[path] = validation.reason
            return
        }
        if let decoding = cause as? DecodingError, let codingPath = Self.codingPath(of: decoding), let first = codingPath.first?.intValue,
            shapes.indices.contains(first)
        {
            errors[fieldPath(argument: first, codingPath.dropFirst())] = "is not accepted: \(Self.reason(of: decoding))"
            return
        }
        errors[""] = (error as? EngineError)?.message ?? "\(error)"
    }

    /// The form field a coding path points into: list indices become the rows they came from, and a
    /// path into a dictionary or JSON text stops at that field (the one the form shows).
    private func fieldPath(argument: Int, _ codingPath: ArraySlice<any CodingKey>) -> String {
        var path = "a\(argument)"
        var shape = shapes[argument]
        for key in codingPath {
            switch shape.unwrapped {
            case .object(let fields):
                guard let field = fields.first(where: { $0.name == key.stringValue }) else { return path }
                path = Self.child(path, field.name)
                shape = field.shape
            case .list(let element):
                guard let index = key.intValue, let rows = listRows[path], rows.indices.contains(index) else { return path }
                path = Self.child(path, String(rows[index]))
                shape = element
            default:
                return path
            }
        }
        return path
    }

    /// The first field whose key path ends with `field` (`"zip"` or `"shipTo.zip"`).
    func path(named field: String) -> String? {
        let wanted = field.split(separator: ".").map(String.init)
        func search(_ shape: InputShape, _ path: String, _ keys: [String]) -> String? {
            if keys.count >= wanted.count, Array(keys.suffix(wanted.count)) == wanted { return path }
            guard case .object(let fields) = shape.unwrapped else { return nil }
            for field in fields {
                if let found = search(field.shape, Self.child(path, field.name), keys + [field.name]) { return found }
            }
            return nil
        }
        for (index, shape) in shapes.enumerated() {
            if let found = search(shape, "a\(index)", []) { return found }
        }
        return nil
    }

    static func codingPath(of error: DecodingError) -> [any CodingKey]? {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): context.codingPath
        case .keyNotFound(let key, let context): context.codingPath + [key]
        @unknown default: nil
        }
    }

    private static func reason(of error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): context.debugDescription
        case .keyNotFound: "is required"
        @unknown default: "\(error)"
        }
    }
}
