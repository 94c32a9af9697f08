//! Local state under the cache directory (`$XDG_CACHE_HOME/adapterctl`, else
//! `~/.cache/adapterctl`), never inside the user's directories:
//!
//! * `digests.json` — the digest cache, so a 100 GB model is hashed once:
//!   `{"version": 1, "entries": {"<canonical absolute path>": {"size", "mtime_ns", "inode",
//!   "digest"}}}`. An entry is used only while size, mtime (ns) and inode all still match.
//! * `uploads.json` — resumable upload sessions in progress:
//!   `{"version": 1, "sessions": {"<registry URL>": {"sha256:…": {"id", "size"}}}}`; a
//!   session opened while its file was still being hashed is keyed `file:<canonical path>`
//!   and also records the file's state (`"file": {"size", "mtime_ns", "inode"}`).
//!
//! Both are written atomically (temp file + rename) and merged with what is on disk, so two
//! `adapterctl` processes lose at most each other's newest entries, never the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use adapter_core::digest::{Digest, sha256_reader};
use anyhow::Context;
use serde::{Deserialize, Serialize};

const DIGESTS_FILE: &str = "digests.json";
const UPLOADS_FILE: &str = "uploads.json";

/// What identifies one state of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

impl FileStamp {
    pub fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let (mtime_ns, inode) = {
            use std::os::unix::fs::MetadataExt;
            (
                meta.mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(meta.mtime_nsec()),
                meta.ino(),
            )
        };
        #[cfg(not(unix))]
        let (mtime_ns, inode) = (
            meta.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            0,
        );
        Self {
            size: meta.len(),
            mtime_ns,
            inode,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CacheEntry {
    #[serde(flatten)]
    stamp: FileStamp,
    digest: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DigestFile {
    version: u32,
    entries: BTreeMap<String, CacheEntry>,
}

/// The digest cache (see the module docs). Without a cache directory it only hashes.
#[derive(Debug, Default)]
pub struct DigestCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, CacheEntry>,
    new: BTreeMap<String, CacheEntry>,
    pub hits: u64,
    pub hashed_bytes: u64,
}

impl DigestCache {
    /// Load `dir/digests.json`; a missing or unreadable cache is an empty one.
    pub fn load(dir: Option<&Path>) -> Self {
        let path = dir.map(|d| d.join(DIGESTS_FILE));
        let entries = path
            .as_deref()
            .and_then(|p| fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<DigestFile>(&b).ok())
            .map(|f| f.entries)
            .unwrap_or_default();
        Self {
            path,
            entries,
            ..Self::default()
        }
    }

    /// The digest and size of `path`, from the cache when the file is unchanged, else by
    /// hashing it (`progress` is called with each block's length).
    pub fn digest(
        &mut self,
        path: &Path,
        mut progress: impl FnMut(u64),
    ) -> io::Result<(Digest, u64)> {
        let miss = match self.lookup(path)? {
            Lookup::Hit(digest, size) => {
                progress(size);
                return Ok((digest, size));
            }
            Lookup::Miss(miss) => miss,
        };
        let file = fs::File::open(&miss.path)?;
        let (digest, len) = sha256_reader(Progress {
            inner: file,
            progress: &mut progress,
        })?;
        self.remember(&miss, digest, len)?;
        Ok((digest, len))
    }

    /// The cached digest of `path` while the file is unchanged (a hit is counted), else
    /// what [`DigestCache::remember`] needs once the caller has hashed it.
    pub fn lookup(&mut self, path: &Path) -> io::Result<Lookup> {
        let canonical = fs::canonicalize(path)?;
        let key = canonical.to_string_lossy().into_owned();
        let before = FileStamp::of(&fs::metadata(&canonical)?);
        if let Some(e) = self.new.get(&key).or_else(|| self.entries.get(&key))
            && e.stamp == before
        {
            self.hits += 1;
            return Ok(Lookup::Hit(e.digest, before.size));
        }
        Ok(Lookup::Miss(Miss {
            path: canonical,
            key,
            before,
        }))
    }

    /// Record the digest of a file [`DigestCache::lookup`] missed, hashed by the caller
    /// (`len` bytes). A file that changed while it was hashed is not cached (the digest may
    /// be of neither version); the server refuses the upload if it no longer matches.
    pub fn remember(&mut self, miss: &Miss, digest: Digest, len: u64) -> io::Result<()> {
        self.hashed_bytes += len;
        let after = FileStamp::of(&fs::metadata(&miss.path)?);
        if after == miss.before && after.size == len {
            self.new.insert(
                miss.key.clone(),
                CacheEntry {
                    stamp: after,
                    digest,
                },
            );
        }
        Ok(())
    }

    /// Write new entries, merged with the file as it is now; entries of files that no
    /// longer exist are dropped.
    pub fn save(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.new.is_empty() {
            return Ok(());
        }
        let mut on_disk = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<DigestFile>(&b).ok())
            .unwrap_or_default();
        on_disk.entries.append(&mut self.new.clone());
        on_disk.entries.retain(|p, _| Path::new(p).exists());
        on_disk.version = 1;
        write_atomic(path, &serde_json::to_vec_pretty(&on_disk)?)?;
        self.entries.append(&mut self.new);
        Ok(())
    }
}

/// What [`DigestCache::lookup`] found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Unchanged since it was hashed: its digest and size.
    Hit(Digest, u64),
    /// Not cached, or changed since.
    Miss(Miss),
}

/// A file the cache does not know in its current state.
#[derive(Debug, Clone)]
pub struct Miss {
    /// The canonical path.
    pub path: PathBuf,
    key: String,
    /// The file's state when it was looked up.
    pub before: FileStamp,
}

struct Progress<'a, R, F> {
    inner: R,
    progress: &'a mut F,
}

impl<R: Read, F: FnMut(u64)> Read for Progress<'_, R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// A resumable upload session recorded locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub size: u64,
    /// A session opened while the file was still being hashed (its digest unknown): the
    /// state of the file it holds a prefix of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileStamp>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UploadsFile {
    version: u32,
    sessions: BTreeMap<String, BTreeMap<String, SessionRecord>>,
}

/// `uploads.json` (see the module docs). Without a cache directory nothing is recorded.
#[derive(Debug, Clone)]
pub struct UploadState {
    path: Option<PathBuf>,
    lock: std::sync::Arc<std::sync::Mutex<()>>,
}

impl UploadState {
    pub fn new(dir: Option<&Path>) -> Self {
        Self {
            path: dir.map(|d| d.join(UPLOADS_FILE)),
            lock: Default::default(),
        }
    }

    fn read(path: &Path) -> UploadsFile {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The recorded session for `digest` on registry `registry`.
    pub fn get(&self, registry: &str, digest: &Digest) -> Option<SessionRecord> {
        self.get_key(registry, &digest.to_string())
    }

    /// Record (`Some`) or forget (`None`) the session for `digest`.
    pub fn set(
        &self,
        registry: &str,
        digest: &Digest,
        session: Option<SessionRecord>,
    ) -> anyhow::Result<()> {
        self.set_key(registry, &digest.to_string(), session)
    }

    /// The key of a session opened for a file whose digest is not known yet.
    pub fn file_key(canonical: &Path) -> String {
        format!("file:{}", canonical.display())
    }

    /// The recorded session under `key` ([`UploadState::file_key`] or a digest).
    pub fn get_key(&self, registry: &str, key: &str) -> Option<SessionRecord> {
        let path = self.path.as_ref()?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Self::read(path).sessions.get(registry)?.get(key).cloned()
    }

    /// A session recorded under a digest for a blob of `size` bytes (a file hashed while it
    /// uploads may turn out to be that blob).
    pub fn find_by_size(&self, registry: &str, size: u64) -> Option<(Digest, SessionRecord)> {
        let path = self.path.as_ref()?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Self::read(path)
            .sessions
            .get(registry)?
            .iter()
            .filter(|(_, r)| r.size == size)
            .find_map(|(k, r)| Some((k.parse().ok()?, r.clone())))
    }

    /// Record (`Some`) or forget (`None`) the session under `key`.
    pub fn set_key(
        &self,
        registry: &str,
        key: &str,
        session: Option<SessionRecord>,
    ) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = Self::read(path);
        file.version = 1;
        match session {
            Some(s) => {
                file.sessions
                    .entry(registry.to_owned())
                    .or_default()
                    .insert(key.to_owned(), s);
            }
            None => {
                if let Some(m) = file.sessions.get_mut(registry) {
                    m.remove(key);
                    if m.is_empty() {
                        file.sessions.remove(registry);
                    }
                }
            }
        }
        write_atomic(path, &serde_json::to_vec_pretty(&file)?)
            .with_context(|| format!("recording the upload session in {}", path.display()))
    }
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hits_until_the_file_changes() {
        let cache_dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let f = data.path().join("w.bin");
        fs::write(&f, b"abc").unwrap();
        let abc = Digest::of_bytes(b"abc");

        let mut c = DigestCache::load(Some(cache_dir.path()));
        assert_eq!(c.digest(&f, |_| {}).unwrap(), (abc, 3));
        assert_eq!((c.hits, c.hashed_bytes), (0, 3));
        c.save().unwrap();

        // A new process: served from the file, nothing hashed.
        let mut c = DigestCache::load(Some(cache_dir.path()));
        assert_eq!(c.digest(&f, |_| {}).unwrap(), (abc, 3));
        assert_eq!((c.hits, c.hashed_bytes), (1, 0));

        // Same size, new content and mtime: hashed again.
        fs::write(&f, b"xyz").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let mut c = DigestCache::load(Some(cache_dir.path()));
        assert_eq!(c.digest(&f, |_| {}).unwrap(), (Digest::of_bytes(b"xyz"), 3));
        assert_eq!((c.hits, c.hashed_bytes), (0, 3));

        // Touching the mtime alone also invalidates.
        c.save().unwrap();
        let mut c = DigestCache::load(Some(cache_dir.path()));
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later + std::time::Duration::from_secs(1))
            .unwrap();
        c.digest(&f, |_| {}).unwrap();
        assert_eq!(c.hits, 0);

        // A changed size is a miss too.
        fs::write(&f, b"abcd").unwrap();
        let mut c = DigestCache::load(Some(cache_dir.path()));
        assert_eq!(c.digest(&f, |_| {}).unwrap().1, 4);
        assert_eq!(c.hits, 0);
    }

    #[test]
    fn cache_is_keyed_by_canonical_path_and_drops_deleted_files() {
        let cache_dir = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let f = data.path().join("a");
        let g = data.path().join("b");
        fs::write(&f, b"1").unwrap();
        fs::write(&g, b"2").unwrap();
        let mut c = DigestCache::load(Some(cache_dir.path()));
        c.digest(&f, |_| {}).unwrap();
        c.digest(&g, |_| {}).unwrap();
        c.save().unwrap();
        // Through a `..` path: the same entry.
        let sub = data.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mut c = DigestCache::load(Some(cache_dir.path()));
        c.digest(&sub.join("../a"), |_| {}).unwrap();
        assert_eq!(c.hits, 1);
        fs::remove_file(&g).unwrap();
        fs::write(data.path().join("c"), b"3").unwrap();
        c.digest(&data.path().join("c"), |_| {}).unwrap();
        c.save().unwrap();
        let text = fs::read_to_string(cache_dir.path().join(DIGESTS_FILE)).unwrap();
        assert!(!text.contains("\"b\"") && !text.contains("/b\""), "{text}");
        assert!(text.contains("/a\"") && text.contains("/c\""), "{text}");
    }

    #[test]
    fn no_cache_dir_still_hashes() {
        let data = tempfile::tempdir().unwrap();
        let f = data.path().join("a");
        fs::write(&f, b"abc").unwrap();
        let mut c = DigestCache::load(None);
        assert_eq!(c.digest(&f, |_| {}).unwrap().0, Digest::of_bytes(b"abc"));
        c.save().unwrap();
    }

    #[test]
    fn upload_sessions_round_trip_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let s = UploadState::new(Some(dir.path()));
        let d = Digest::of_bytes(b"x");
        assert_eq!(s.get("http://a/", &d), None);
        let rec = SessionRecord {
            id: "u1".into(),
            size: 9,
            file: None,
        };
        s.set("http://a/", &d, Some(rec.clone())).unwrap();
        assert_eq!(s.get("http://a/", &d), Some(rec));
        assert_eq!(s.get("http://b/", &d), None);
        s.set("http://a/", &d, None).unwrap();
        assert_eq!(s.get("http://a/", &d), None);
    }

    #[test]
    fn sessions_of_files_being_hashed_are_kept_apart_from_digests() {
        let dir = tempfile::tempdir().unwrap();
        let s = UploadState::new(Some(dir.path()));
        let d = Digest::of_bytes(b"x");
        let stamp = FileStamp {
            size: 9,
            mtime_ns: 1,
            inode: 2,
        };
        let key = UploadState::file_key(Path::new("/data/model.safetensors"));
        let by_file = SessionRecord {
            id: "u1".into(),
            size: 9,
            file: Some(stamp),
        };
        s.set_key("http://a/", &key, Some(by_file.clone())).unwrap();
        assert_eq!(s.get_key("http://a/", &key), Some(by_file));
        // Only digest keys are candidates by size.
        assert_eq!(s.find_by_size("http://a/", 9), None);
        let by_digest = SessionRecord {
            id: "u2".into(),
            size: 9,
            file: None,
        };
        s.set("http://a/", &d, Some(by_digest.clone())).unwrap();
        assert_eq!(s.find_by_size("http://a/", 9), Some((d, by_digest)));
        assert_eq!(s.find_by_size("http://a/", 10), None);
        let text = fs::read_to_string(dir.path().join(UPLOADS_FILE)).unwrap();
        assert!(
            text.contains("\"file\"") && text.contains("mtime_ns"),
            "{text}"
        );
    }

    #[test]
    fn a_miss_remembered_after_hashing_is_a_hit_unless_the_file_changed() {
        let data = tempfile::tempdir().unwrap();
        let f = data.path().join("w");
        fs::write(&f, b"abc").unwrap();
        let mut c = DigestCache::load(None);
        let Lookup::Miss(miss) = c.lookup(&f).unwrap() else {
            panic!("an empty cache hit")
        };
        c.remember(&miss, Digest::of_bytes(b"abc"), 3).unwrap();
        assert!(matches!(c.lookup(&f).unwrap(), Lookup::Hit(_, 3)));
        assert_eq!((c.hits, c.hashed_bytes), (1, 3));
        // Changed between the lookup and the end of the hash: not cached.
        let g = data.path().join("g");
        fs::write(&g, b"ab").unwrap();
        let Lookup::Miss(miss) = c.lookup(&g).unwrap() else {
            panic!("hit")
        };
        fs::write(&g, b"abcd").unwrap();
        c.remember(&miss, Digest::of_bytes(b"ab"), 2).unwrap();
        assert!(matches!(c.lookup(&g).unwrap(), Lookup::Miss(_)));
    }
}
