//! The pages' two assets, compiled in: the favicon (SVG) and one small script. The script
//! only improves what works without it: a copy button on each "use it" command, and live
//! job tables (a table marked `data-live` is fetched again every second and replaced in
//! place until no job in it can change).

use axum::http::header;
use axum::response::IntoResponse;

const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#1f5fc4\"/>\
<path d=\"M8 22 L16 8 L24 22 Z\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2.5\" stroke-linejoin=\"round\"/>\
<circle cx=\"16\" cy=\"18\" r=\"2.5\" fill=\"#fff\"/></svg>";

const SCRIPT: &str = r#"(function () {
  "use strict";
  document.querySelectorAll("pre[data-copy]").forEach(function (pre) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "copy";
    b.textContent = "Copy";
    b.addEventListener("click", function () {
      var text = pre.textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        var r = document.createRange();
        r.selectNodeContents(pre);
        var s = window.getSelection();
        s.removeAllRanges();
        s.addRange(r);
        try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
      }
    });
    var heading = pre.previousElementSibling;
    if (heading && heading.tagName === "H3") { heading.appendChild(b); } else { pre.parentNode.insertBefore(b, pre); }
  });
  function refresh() {
    var table = document.querySelector("table[data-live]");
    if (!table) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(table.id);
        if (fresh) { table.replaceWith(document.importNode(fresh, true)); }
        setTimeout(refresh, 1000);
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }
  setTimeout(refresh, 1000);
})();
"#;

/// `GET /favicon.ico` (an SVG: every current browser takes it).
pub async fn favicon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
}

/// `GET /ui/assets/ui.js`.
pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SCRIPT,
    )
}
