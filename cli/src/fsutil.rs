//! File-system helpers: joining manifest paths safely, resume arithmetic, directory listing.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use adapter_core::manifest::FilePath;
use anyhow::bail;

/// `root` joined with a manifest path, refusing anything that could leave `root` (core's
/// `FilePath` already refuses these; this is the second lock on the door).
pub fn safe_join(root: &Path, path: &FilePath) -> anyhow::Result<PathBuf> {
    let mut out = root.to_path_buf();
    for segment in path.as_str().split('/') {
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None)
                if c == segment && !segment.contains(['\\', ':']) =>
            {
                out.push(c)
            }
            _ => bail!(
                "refusing unsafe file path `{}` from the manifest",
                path.as_str().escape_debug()
            ),
        }
    }
    Ok(out)
}

/// What to do with a partially downloaded file of `have` bytes whose full size is `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumePlan {
    /// Nothing there yet: download everything.
    Fresh,
    /// Keep the first `from` bytes (hash them), fetch `Range: bytes=from-`.
    Resume { from: u64 },
    /// Complete size: hash it; download again only if it does not verify.
    Verify,
    /// Longer than it can be: start over.
    Restart,
}

pub fn resume_plan(have: Option<u64>, size: u64) -> ResumePlan {
    match have {
        None => ResumePlan::Fresh,
        Some(n) if n == size => ResumePlan::Verify,
        Some(0) => ResumePlan::Fresh,
        Some(n) if n < size => ResumePlan::Resume { from: n },
        Some(_) => ResumePlan::Restart,
    }
}

/// Check a `Content-Range: bytes a-b/total` header covers the rest of a blob of `size` bytes
/// from `from`.
pub fn content_range_start(header: &str, from: u64, size: u64) -> anyhow::Result<()> {
    content_range_is(header, from..size, size)
}

/// Check a `Content-Range: bytes a-b/total` header says exactly `range` of a blob of `size`
/// bytes.
pub fn content_range_is(header: &str, range: Range<u64>, size: u64) -> anyhow::Result<()> {
    let rest = header
        .strip_prefix("bytes ")
        .ok_or_else(|| anyhow::anyhow!("malformed Content-Range `{header}`"))?;
    let (span, total) = rest
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("malformed Content-Range `{header}`"))?;
    let (a, b) = span
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("malformed Content-Range `{header}`"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| anyhow::anyhow!("malformed Content-Range `{header}`"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a != range.start
        || b.checked_add(1) != Some(range.end)
        || (total != "*" && parse(total)? != size)
    {
        bail!(
            "the registry answered Content-Range `{header}` for bytes {}-{} of a {size}-byte blob",
            range.start,
            range.end.saturating_sub(1)
        );
    }
    Ok(())
}

/// Regular files under `dir`, recursively, as `/`-joined relative paths (sorted); symlinks and
/// other special files are reported as such so that a comparison with a manifest fails.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, d)) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push((rel, entry.path()));
            } else {
                out.push((rel, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_only_plain_segments() {
        let root = Path::new("/dest");
        let p = |s: &str| FilePath::new(s).unwrap();
        assert_eq!(
            safe_join(root, &p("a/b.json")).unwrap(),
            Path::new("/dest/a/b.json")
        );
        assert_eq!(safe_join(root, &p("..b")).unwrap(), Path::new("/dest/..b"));
        assert_eq!(
            safe_join(root, &p(".gitattributes")).unwrap(),
            Path::new("/dest/.gitattributes")
        );
        // core refuses these already; check that it does, so the second lock is not the only one.
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "C:x",
            "a\\b",
            "a//b",
            "./a",
        ] {
            assert!(FilePath::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resume_math() {
        assert_eq!(resume_plan(None, 10), ResumePlan::Fresh);
        assert_eq!(resume_plan(Some(0), 10), ResumePlan::Fresh);
        assert_eq!(resume_plan(None, 0), ResumePlan::Fresh);
        assert_eq!(resume_plan(Some(0), 0), ResumePlan::Verify);
        assert_eq!(resume_plan(Some(4), 10), ResumePlan::Resume { from: 4 });
        assert_eq!(resume_plan(Some(9), 10), ResumePlan::Resume { from: 9 });
        assert_eq!(resume_plan(Some(10), 10), ResumePlan::Verify);
        assert_eq!(resume_plan(Some(11), 10), ResumePlan::Restart);
    }

    #[test]
    fn content_range_must_cover_the_rest() {
        content_range_start("bytes 4-9/10", 4, 10).unwrap();
        content_range_start("bytes 4-9/*", 4, 10).unwrap();
        assert!(content_range_start("bytes 0-9/10", 4, 10).is_err());
        assert!(content_range_start("bytes 4-8/10", 4, 10).is_err());
        assert!(content_range_start("bytes 4-9/11", 4, 10).is_err());
        assert!(content_range_start("items 4-9/10", 4, 10).is_err());
        assert!(content_range_start("bytes x-9/10", 4, 10).is_err());
        content_range_is("bytes 4-6/10", 4..7, 10).unwrap();
        assert!(content_range_is("bytes 4-7/10", 4..7, 10).is_err());
        assert!(content_range_is("bytes 3-6/10", 4..7, 10).is_err());
    }

    #[test]
    fn lists_nested_files_sorted() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x"), b"1").unwrap();
        std::fs::write(d.path().join("a"), b"2").unwrap();
        let names: Vec<String> = list_files(d.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "sub/x"]);
    }
}
