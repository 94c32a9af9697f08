//! The hostile values and how they are put in URLs; which file paths the docs allow.

/// A hostile value.
pub(super) struct Hostile {
    pub(super) name: &'static str,
    /// The value as a string (JSON bodies); `None` for bytes that are not UTF-8.
    pub(super) text: Option<String>,
    /// How it is put in a URL path segment or query value.
    pub(super) url: String,
}

/// Percent-encode every byte but the unreserved ones (RFC 3986).
pub(super) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub(super) const MB: usize = 1 << 20;

pub(super) fn hostile() -> Vec<Hostile> {
    let encoded = |name, text: &str| Hostile {
        name,
        text: Some(text.to_owned()),
        url: encode(text),
    };
    // Sent as they are: the URL form is the attack.
    let raw = |name, text: &str| Hostile {
        name,
        text: Some(text.to_owned()),
        url: text.to_owned(),
    };
    vec![
        raw("dot-dot slash", "../"),
        raw("dot-dots to the canary", "../../canary"),
        encoded("backslashes", "..\\..\\canary"),
        raw("percent-encoded dot-dots", "%2e%2e%2f%2e%2e%2fcanary"),
        raw(
            "double-encoded dot-dots",
            "%252e%252e%252f%252e%252e%252fcanary",
        ),
        encoded("absolute path", "/etc/passwd"),
        encoded("drive path", "C:/x"),
        encoded("file URL", "file:///etc/passwd"),
        encoded("double slash", "//proc/self/root"),
        encoded("NUL", "bot\0"),
        encoded("fullwidth solidus", "..\u{FF0F}..\u{FF0F}canary"),
        encoded("one-dot leaders", "\u{2024}\u{2024}/canary"),
        encoded("right-to-left override", "bot\u{202E}lmth.exe"),
        encoded("SQL or", "' OR 1=1 --"),
        encoded("SQL drop", "\"; DROP TABLE versions; --"),
        Hostile {
            name: "not UTF-8",
            text: None,
            url: "%ff%fe".into(),
        },
        encoded("1 MB", &"a".repeat(MB)),
    ]
}

/// FORMATS.md, "File paths": UTF-8, 1 to 1024 bytes; relative (no leading `/`, no drive
/// prefix); no `\`; no control character; segments never empty, `.` or `..`.
pub(super) fn file_path_ok(p: &str) -> bool {
    let b = p.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    let refused = p.is_empty()
        || p.len() > 1024
        || p.starts_with('/')
        || drive
        || p.contains('\\')
        || p.chars().any(char::is_control);
    !refused && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}
