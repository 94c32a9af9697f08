//! Small helpers for human-readable output.

use adapter_core::diag::Findings;

/// `1234567` → `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A label/value line, aligned.
pub fn field(label: &str, value: impl std::fmt::Display) {
    println!("  {label:<14}{value}");
}

/// Print warnings and errors, one per line, after the summary.
pub fn findings(findings: &Findings) {
    for w in &findings.warnings {
        println!("warning[{}]: {}", w.code, w.message);
    }
    for e in &findings.errors {
        println!("error[{}]: {}", e.code, e.message);
    }
    if findings.errors.is_empty() && findings.warnings.is_empty() {
        println!("no problems found");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(13_631_488), "13,631,488");
    }
}
