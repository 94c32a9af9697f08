//! HTML helpers: escaping (every name, label and eval name is user input) and the page frame
//! with inline CSS (no external assets: registries run in closed networks).

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

/// Percent-encode one path segment (names are restricted already; this is defence).
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

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;\
padding:0 1em;color:#222}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;\
border-bottom:1px solid #ddd}table{border-collapse:collapse;width:100%;margin:.5em 0}\
th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:top}\
th{background:#f4f4f4}code{font-size:.9em}.yanked{color:#a00}.yanked td{opacity:.6}\
.tag{display:inline-block;background:#eef;border-radius:3px;padding:0 .35em;margin:0 .2em .1em 0;\
font-size:.9em}.alias{background:#efe}.muted{color:#777}.charts svg{margin:.3em}";

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>{body}\
         <p class=\"muted\">API: <a href=\"/docs/\">/docs</a> · <a href=\"/openapi.json\">/openapi.json</a></p>\
         </body></html>",
        esc(title)
    )
}

/// `<span class="tag">` for each item.
pub fn tags<'a>(items: impl IntoIterator<Item = &'a str>, class: &str) -> String {
    items
        .into_iter()
        .map(|t| format!("<span class=\"tag {class}\">{}</span>", esc(t)))
        .collect()
}

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
    }
}
