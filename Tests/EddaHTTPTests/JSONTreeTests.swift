import Edda
import EddaHTTP
import Foundation
import Testing

/// Values on the viewer's pages as foldable JSON trees: parsed once in their stored order,
/// escaped, a JSON string shown as its tree, long strings and large containers folded.
@Suite("HTTP: JSON trees in the viewer")
struct JSONTreeTests {
    @Test func parsingKeepsTheKeysOrderAndNumbersAsWritten() throws {
        let value = try #require(JSONTree.parse(#" {"z": 1, "a": [true, null, -0.10, 1e400, 12345678901234567890], "m": "\u00e9\ud83d\ude00\n"} "#))
        guard case .object(let members) = value else { Issue.record("not an object: \(value)"); return }
        #expect(members.map(\.key) == ["z", "a", "m"])
        #expect(members[1].value == .array([.bool(true), .null, .number("-0.10"), .number("1e400"), .number("12345678901234567890")]))
        #expect(members[2].value == .string("é😀\n"))
        #expect(JSONTree.pretty(value) == "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    -0.10,\n    1e400,\n    12345678901234567890\n  ],\n  \"m\": \"é😀\\n\"\n}")
    }

    @Test func textThatIsNotExactlyOneJSONValueIsRefused() {
        for text in ["", "01", "[1,]", "{\"a\"}", "{\"a\":1,}", "\"\\x\"", "[1] 2", "tru", "\"a\nb\"", "-", "1.", "{'a':1}", "[\"\\ud800\"" ] {
            #expect(JSONTree.parse(text) == nil, "\(text)")
        }
        let deep = String(repeating: "[", count: 1_000) + String(repeating: "]", count: 1_000)
        #expect(JSONTree.parse(deep) == nil, "too deep: refused, not a stack overflow")
        let html = JSONTree.html(deep)
        #expect(html.contains("</pre><details class=\"j-long\"><summary><span class=\"j-str\">[[[") && !html.contains("<details class=\"j\""), "shown as text, folded")
    }

    @Test func everyKeyAndStringIsEscaped() {
        let html = JSONTree.html(#"{"<img src=x onerror=alert(1)>": "</script><script>alert('x')</script>", "q": "\"&"}"#)
        #expect(!html.contains("<img") && !html.contains("<script>") && !html.contains("</script>"))
        #expect(html.contains("<span class=\"j-key\">&lt;img src=x onerror=alert(1)&gt;</span>"))
        #expect(html.contains("&lt;/script&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
        #expect(html.contains("<span class=\"j-str\">&quot;&quot;&amp;&quot;</span>"))
        let text = JSONTree.html("not json <b>")
        #expect(text.contains("</pre><span class=\"j-str\">not json &lt;b&gt;</span></div>"))
    }

    @Test func aStringHoldingJSONIsShownAsItsTree() {
        let html = JSONTree.html(#"{"body": "{\"status\": 402, \"detail\": \"{\\\"code\\\": \\\"card_declined\\\"}\"}", "plain": "{not json"}"#)
        #expect(html.components(separatedBy: ">JSON in a string</span>").count - 1 == 2, "the body, and the detail inside it")
        #expect(html.contains("<span class=\"j-key\">status</span>: <span class=\"j-num\">402</span>"))
        #expect(html.contains("<span class=\"j-key\">code</span>: <span class=\"j-str\">&quot;card_declined&quot;</span>"))
        let tree = html.components(separatedBy: "</pre>").dropFirst().joined()   // past the Copy button's JSON text
        #expect(!tree.contains("\\&quot;"), "no escaped quotes left")
        #expect(html.contains("<span class=\"j-str\">&quot;{not json&quot;</span>"), "a string that only looks like JSON stays a string")
    }

    @Test func longValuesFoldAndDeepOrLargeContainersStartClosed() {
        let long = String(repeating: "abcdefghij", count: 30)
        let html = JSONTree.html("{\"note\": \"\(long)\", \"deep\": {\"er\": {\"est\": 1}}, \"many\": [\(Array(repeating: "1", count: 150).joined(separator: ","))]}")
        #expect(html.contains("<details class=\"j-long\"><summary><span class=\"j-str\">&quot;\(long.prefix(80))…</span> <small>300 characters</small></summary>"))
        #expect(html.contains("<span class=\"j-str\">&quot;\(long)&quot;</span></details>"), "the whole string, inside the fold")
        #expect(html.hasPrefix("<div class=\"json\"><button type=\"button\" class=\"copy\""))
        #expect(html.contains("<details class=\"j\" open><summary><span class=\"j-punct\">{</span><small class=\"j-count\">3 keys</small>"), "the top is open")
        #expect(html.contains("<span class=\"j-key\">er</span>: <details class=\"j\"><summary>"), "depth 2 starts closed")
        #expect(html.contains("<small class=\"j-count\">150 items</small>") && html.contains("… 50 more (Copy gives them all)"))
        #expect(html.components(separatedBy: "<span class=\"j-num\">1</span>").count - 1 == 101, "100 items shown, and est")
    }

    @Test func theCopyButtonHoldsTheWholeValuePrettyPrintedAndIsHiddenWithoutTheScript() {
        let html = JSONTree.html(#"{"a":[1,"<x>"]}"#)
        #expect(html.contains("title=\"Copy the value\" hidden>Copy</button><pre class=\"copy-text\" hidden>{\n  &quot;a&quot;: [\n    1,\n    &quot;&lt;x&gt;&quot;\n  ]\n}</pre>"))
        let error = JSONTree.html(error: ErrorRecord(type: "HTTPError", message: #"{"status":500}"#))
        #expect(error.hasPrefix("<div class=\"json error\">"))
        #expect(error.contains("<span class=\"j-key\">error_type</span>: <span class=\"j-str\">&quot;HTTPError&quot;</span>"))
        #expect(error.contains("JSON in a string</span> <details class=\"j\" open>"), "a message holding JSON shows as its tree")
    }
}
