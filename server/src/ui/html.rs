//! HTML helpers: escaping (every name, label, eval name and path segment is user input), the
//! page frame (title, breadcrumb, who is signed in) with inline CSS that follows the
//! browser's light or dark scheme and fits a phone's width. No external assets: registries
//! run in closed networks.

use crate::auth::Caller;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode one path segment or query value (names are restricted already; this is
/// defence).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Unix seconds → `YYYY-MM-DD HH:MM` (UTC).
pub fn date(unix: i64) -> String {
    let c = adapter_core::time::civil(unix);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// Bytes, for people (`1.5 MiB`).
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

const CSS: &str = ":root{--fg:#1d1f23;--muted:#6a6f78;--bg:#fff;--panel:#f5f6f8;--line:#e2e4e8;\
--tag:#e8ecfb;--alias:#e3f4e6;--link:#1f5fc4;--bad:#b3261e;--warn:#8a5a00;--ok:#1e7b34;\
color-scheme:light dark}\
@media (prefers-color-scheme:dark){:root{--fg:#e4e6ea;--muted:#9aa0aa;--bg:#15171a;\
--panel:#1f2226;--line:#33373d;--tag:#27304a;--alias:#1f3a27;--link:#7fb0ff;--bad:#ff8a80;\
--warn:#f3c56b;--ok:#7ddc8f}}\
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;color:var(--fg);\
background:var(--bg)}a{color:var(--link)}main{max-width:1150px;margin:0 auto;padding:.5em 1em 2em}\
header.top{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:center;padding:.5em 1em;\
border-bottom:1px solid var(--line);background:var(--panel)}header.top .brand{font-weight:600;\
text-decoration:none;color:var(--fg)}header.top .who{margin-left:auto}\
nav.crumbs{font-size:.9em;color:var(--muted);margin:.6em 0;overflow-wrap:anywhere}\
h1{font-size:1.45em;margin:.2em 0 .4em;overflow-wrap:anywhere}h2{font-size:1.15em;\
margin-top:1.6em;border-bottom:1px solid var(--line)}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid var(--line);vertical-align:top}\
th{background:var(--panel);font-weight:600}code,pre{font-size:.88em;overflow-wrap:anywhere}\
pre{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.5em .7em;\
white-space:pre-wrap;margin:.3em 0}.yanked,.bad{color:var(--bad)}tr.yanked td{opacity:.65}\
.warn{color:var(--warn)}.ok{color:var(--ok)}\
.tag{display:inline-block;background:var(--tag);border-radius:3px;padding:0 .35em;\
margin:0 .2em .15em 0;font-size:.88em}.alias{background:var(--alias)}.muted{color:var(--muted)}\
.charts svg{margin:.3em;max-width:100%;height:auto}.grid{display:grid;\
grid-template-columns:repeat(auto-fit,minmax(18em,1fr));gap:.4em 1.5em}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em;margin:.4em 0}\
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}\
form.search{display:flex;flex-wrap:wrap;gap:.4em;align-items:end;background:var(--panel);\
padding:.6em;border:1px solid var(--line);border-radius:4px}form.search label{display:flex;\
flex-direction:column;font-size:.85em;color:var(--muted)}input,select,button{font:inherit;\
padding:.25em .4em;color:var(--fg);background:var(--bg);border:1px solid var(--line);\
border-radius:3px}form.search input[name=q]{min-width:14em}button{cursor:pointer}\
.panel{background:var(--panel);border:1px solid var(--line);border-radius:4px;padding:.5em .8em;\
margin:.6em 0}.flag{display:inline-block;border-radius:3px;padding:0 .4em;font-weight:600;\
background:var(--bad);color:var(--bg)}.pager{display:flex;gap:1em;margin:.6em 0}\
.lineage{display:flex;flex-wrap:wrap;align-items:center;gap:.4em}.lineage .node{border:1px solid \
var(--line);border-radius:4px;padding:.3em .5em;background:var(--panel)}.lineage .self{\
border-color:var(--link)}.lineage .col{display:flex;flex-direction:column;gap:.3em}\
.arrow{color:var(--muted);font-size:1.2em}progress{width:8em}\
h3{font-size:.95em;margin:.8em 0 .2em}button.copy{font-size:.8em;margin-left:.6em;padding:0 .4em}\
@media (max-width:640px){body{font-size:14px}th,td{padding:.25em .3em}}";

/// One step of a page's breadcrumb: its label and where it links (`None`: this page).
#[derive(Debug, Clone)]
pub struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

impl Crumb {
    pub fn link(label: impl Into<String>, href: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: Some(href.into()),
        }
    }

    pub fn here(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            href: None,
        }
    }
}

/// Who the header says is signed in, with the sign-out button (a form: no script needed).
fn who(caller: Option<&Caller>) -> String {
    match caller.and_then(|c| c.token.as_ref()) {
        Some(t) => format!(
            "<span class=\"who\">signed in as <b>{}</b> <span class=\"muted\">({}{})</span> \
             <form method=\"post\" action=\"/ui/sign-out\" style=\"display:inline\">\
             <button type=\"submit\">Sign out</button></form></span>",
            esc(&t.name),
            esc(t.scope.as_str()),
            t.namespaces
                .as_ref()
                .map(|n| format!(": {}", esc(&n.join(", "))))
                .unwrap_or_default()
        ),
        None => "<span class=\"who\"><a href=\"/ui/sign-in\">Sign in</a></span>".into(),
    }
}

/// A whole page: `<title>`, the header, the breadcrumb (the catalogue first), the body.
/// `caller`: `None` on pages outside a session (sign-in, errors before authentication).
pub fn page(title: &str, crumbs: &[Crumb], caller: Option<&Caller>, body: &str) -> String {
    let mut trail = String::from("<a href=\"/\">catalogue</a>");
    for c in crumbs {
        trail.push_str(" › ");
        match &c.href {
            Some(h) => trail.push_str(&format!("<a href=\"{}\">{}</a>", esc(h), esc(&c.label))),
            None => trail.push_str(&format!("<span>{}</span>", esc(&c.label))),
        }
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · adapter registry</title>\
         <link rel=\"icon\" href=\"/favicon.ico\" type=\"image/svg+xml\">\
         <style>{CSS}</style></head><body>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">adapter registry</a>\
         <a href=\"/?kind=adapters\">adapters</a><a href=\"/?kind=models\">models</a>\
         <a href=\"/ui/jobs\">jobs</a>{w}</header><main>\
         <nav class=\"crumbs\" aria-label=\"breadcrumb\">{trail}</nav>{body}\
         <p class=\"muted\">API: <a href=\"/docs/\">/docs</a> · \
         <a href=\"/openapi.json\">/openapi.json</a></p>\
         <script src=\"/ui/assets/ui.js\" defer></script></main></body></html>",
        t = esc(title),
        w = who(caller),
    )
}

/// `<span class="tag">` for each item.
pub fn tags<'a>(items: impl IntoIterator<Item = &'a str>, class: &str) -> String {
    items
        .into_iter()
        .map(|t| format!("<span class=\"tag {class}\">{}</span>", esc(t)))
        .collect()
}

/// A dash for a value that is not there.
pub const NONE: &str = "<span class=\"muted\">–</span>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(date(951_782_400), "2000-02-29 00:00");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
    }

    #[test]
    fn the_frame_escapes_its_title_and_crumbs() {
        let p = page(
            "<x>",
            &[Crumb::link("a\"b", "/ui/\"q"), Crumb::here("<y>")],
            None,
            "",
        );
        assert!(p.contains("<title>&lt;x&gt; · adapter registry</title>"));
        assert!(p.contains("href=\"/ui/&quot;q\">a&quot;b</a>"));
        assert!(p.contains("<span>&lt;y&gt;</span>"));
        assert!(p.contains("Sign in"));
    }
}
