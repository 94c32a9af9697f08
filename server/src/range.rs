//! One `Range: bytes=…` header against a blob of known size (RFC 9110 §14): `a-b`, `a-`,
//! `-n`. Several ranges or another unit are refused (400); a range outside the blob is 416.

use std::ops::Range;

use crate::error::ApiError;

/// `Ok(None)`: no header (the whole blob). `Ok(Some(r))`: serve `r` (non-empty, inside).
pub fn parse(header: Option<&str>, size: u64) -> Result<Option<Range<u64>>, ApiError> {
    let Some(raw) = header else {
        return Ok(None);
    };
    let invalid = |why: &str| ApiError::new("invalid_range", format!("Range header: {why}"));
    let spec = raw
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(|| invalid("only `bytes=` ranges are supported"))?;
    if spec.contains(',') {
        return Err(invalid("only one range per request is supported"));
    }
    let (first, last) = spec
        .trim()
        .split_once('-')
        .ok_or_else(|| invalid("expected `a-b`, `a-` or `-n`"))?;
    let (first, last) = (first.trim(), last.trim());
    let unsatisfiable = || ApiError::RangeNotSatisfiable { size };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => Err(invalid("expected `a-b`, `a-` or `-n`")),
        (true, false) => {
            let n = number(last).ok_or_else(|| invalid("suffix length is not a number"))?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            Ok(Some(size.saturating_sub(n)..size))
        }
        (false, _) => {
            let a = number(first).ok_or_else(|| invalid("first byte is not a number"))?;
            let end = if last.is_empty() {
                u64::MAX
            } else {
                let b = number(last).ok_or_else(|| invalid("last byte is not a number"))?;
                if b < a {
                    return Err(invalid("last byte is before first byte"));
                }
                b
            };
            if a >= size {
                return Err(unsatisfiable());
            }
            Ok(Some(a..end.min(size - 1) + 1))
        }
    }
}

/// ASCII digits only; a number too large for u64 saturates (it is past any blob's end).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str, size: u64) -> Option<Range<u64>> {
        parse(Some(h), size).unwrap()
    }

    fn code(h: &str, size: u64) -> &'static str {
        parse(Some(h), size).unwrap_err().code()
    }

    #[test]
    fn forms() {
        assert_eq!(ok("bytes=0-0", 10), Some(0..1));
        assert_eq!(ok("bytes=2-5", 10), Some(2..6));
        assert_eq!(ok("bytes=2-", 10), Some(2..10));
        assert_eq!(ok("bytes=-3", 10), Some(7..10));
        assert_eq!(ok("bytes=-30", 10), Some(0..10));
        assert_eq!(ok("bytes=5-999999999999999999999999", 10), Some(5..10));
        assert_eq!(parse(None, 10).unwrap(), None);
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(code("bytes=10-", 10), "range_not_satisfiable");
        assert_eq!(code("bytes=10-20", 10), "range_not_satisfiable");
        assert_eq!(code("bytes=-0", 10), "range_not_satisfiable");
        assert_eq!(code("bytes=0-", 0), "range_not_satisfiable");
        assert_eq!(
            code("bytes=99999999999999999999999-", 10),
            "range_not_satisfiable"
        );
    }

    #[test]
    fn malformed() {
        for h in [
            "bytes=0-1,2-3",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=+1-2",
            "bytes=0x1-2",
            "0-1",
            "bytes=1",
        ] {
            assert_eq!(code(h, 10), "invalid_range", "{h}");
        }
    }
}
