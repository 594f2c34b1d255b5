import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The viewer's static scripts, served by the server itself (the pages' Content-Security-Policy
/// allows `script-src 'self'` and nothing inline): `/static/live.js` (``LivePages``) and
/// `/static/viewer.js`, which every page loads. Without JavaScript the pages work as served: times
/// in UTC with how long ago on hover, values as foldable trees, and no Copy buttons or time-zone
/// choice (both stay hidden).
enum ViewerScript {
    static func register<Context: RequestContext>(on routes: inout RouteTable<Context>) {
        for (path, source) in [("/static/live.js", LivePages.script), ("/static/viewer.js", script)] {
            routes.on(path, .get) { _, _ in
                Response(
                    status: .ok,
                    headers: [
                        .contentType: "text/javascript; charset=utf-8", .cacheControl: "no-cache",
                        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                    ],
                    body: .init(byteBuffer: ByteBuffer(string: source))
                )
            }
        }
    }

    /// The control that chooses UTC or local times, shown by the script.
    static let zoneToggle = "<span id=\"time-zone\" class=\"zone\" hidden>Times: "
        + "<button type=\"button\" data-zone=\"utc\" aria-pressed=\"true\">UTC</button> "
        + "<button type=\"button\" data-zone=\"local\" aria-pressed=\"false\">Local</button></span>"

    /// The script: shows the time-zone choice and applies it (remembered in `localStorage`) to
    /// every `<time datetime>`, also those the live script swaps in; keeps each time's hover text
    /// ("4 min ago") current; shows the Copy buttons and copies their value.
    static let script = """
        (function () {
          "use strict";
          var KEY = "edda.times", zone = "utc";
          try { if (localStorage.getItem(KEY) === "local") zone = "local"; } catch (e) {}
          function pad(n) { return (n < 10 ? "0" : "") + n; }
          function utc(d) {
            return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
              pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
          }
          function local(d) {
            var m = -d.getTimezoneOffset(), sign = m < 0 ? "-" : "+";
            m = Math.abs(m);
            return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
              pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
              " UTC" + sign + pad(Math.floor(m / 60)) + ":" + pad(m % 60);
          }
          function span(ms) {
            var s = Math.floor(Math.abs(ms) / 1000), units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]], parts = [];
            for (var i = 0; i < units.length && parts.length < 2; i++) {
              var count = Math.floor(s / units[i][0]);
              s -= count * units[i][0];
              if (count > 0) parts.push(count + " " + units[i][1]);
              else if (parts.length) break;
            }
            return parts.join(" ");
          }
          function relative(d) {
            var ms = d.getTime() - Date.now();
            if (Math.abs(ms) < 1000) return "now";
            return ms > 0 ? "in " + span(ms) : span(ms) + " ago";
          }
          function each(root, selector, action) {
            if (root.nodeType !== 1 && root.nodeType !== 9) return;
            if (root.matches && root.matches(selector)) action(root);
            var found = root.querySelectorAll(selector);
            for (var i = 0; i < found.length; i++) action(found[i]);
          }
          function show(time) {
            var d = new Date(time.getAttribute("datetime"));
            if (isNaN(d.getTime())) return;
            var text = zone === "local" ? local(d) : utc(d);
            if (time.textContent !== text) time.textContent = text;
          }
          function prepare(root) {
            each(root, "time[datetime]", show);
            each(root, "button.copy", function (button) { button.hidden = false; });
          }
          function toggle() {
            var box = document.getElementById("time-zone");
            if (!box) return;
            box.hidden = false;
            each(box, "button[data-zone]", function (button) {
              button.setAttribute("aria-pressed", String(button.getAttribute("data-zone") === zone));
            });
          }
          function fallback(text) {
            var area = document.createElement("textarea"), ok = false;
            area.value = text;
            area.className = "copy-area";
            document.body.appendChild(area);
            area.select();
            try { ok = document.execCommand("copy"); } catch (e) {}
            area.remove();
            return ok;
          }
          function copy(button) {
            var source = button.nextElementSibling;
            if (!source || source.className !== "copy-text") return;
            var text = source.textContent;
            function done(ok) {
              button.textContent = ok ? "Copied" : "Copy failed";
              setTimeout(function () { button.textContent = "Copy"; }, 1500);
            }
            if (navigator.clipboard && navigator.clipboard.writeText) {
              navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(fallback(text)); });
            } else {
              done(fallback(text));
            }
          }
          document.addEventListener("click", function (event) {
            var target = event.target;
            if (!target || !target.closest) return;
            var choice = target.closest("#time-zone button[data-zone]");
            if (choice) {
              zone = choice.getAttribute("data-zone") === "local" ? "local" : "utc";
              try { localStorage.setItem(KEY, zone); } catch (e) {}
              prepare(document);
              toggle();
              return;
            }
            var button = target.closest("button.copy");
            if (button) copy(button);
          });
          document.addEventListener("mouseover", function (event) {
            var time = event.target && event.target.closest ? event.target.closest("time[datetime]") : null;
            if (!time) return;
            var d = new Date(time.getAttribute("datetime"));
            if (!isNaN(d.getTime())) time.title = relative(d) + " \\u00B7 " + (zone === "local" ? utc(d) : local(d));
          });
          prepare(document);
          toggle();
          if (window.MutationObserver) {
            new MutationObserver(function (records) {
              for (var i = 0; i < records.length; i++) {
                var added = records[i].addedNodes;
                for (var j = 0; j < added.length; j++) prepare(added[j]);
              }
            }).observe(document.body, { childList: true, subtree: true });
          }
        })();
        """
}
