//! Test infrastructure shared by the server's integration tests, the CLI's end-to-end
//! tests and the benchmarks.
//!
//! Everything here is synchronous and uses only the standard library (plus `tempfile` and
//! `serde_json`), so it compiles fast and works from plain `#[test]` functions.
//!
//! * [`bin`] finds the workspace's built binaries (`adapter-registry`, `adapterctl`).
//! * [`stacks`] lists the storage stacks to run a suite against: [`Stack::Embedded`]
//!   always, [`Stack::Scaleout`] when PostgreSQL and S3 are configured (see below).
//! * [`Backend`] holds what one server needs for a stack (data dir, database, bucket);
//!   [`ServerProcess`] runs the real `adapter-registry serve` against it.
//! * [`http`] sends raw HTTP requests, for hostile inputs the CLI never sends.
//!
//! A suite that runs against every available stack:
//!
//! ```no_run
//! use adapter_testkit::{Backend, ServerProcess, bin, http, stacks};
//!
//! for stack in stacks() {
//!     let backend = Backend::new(&stack);
//!     let server = ServerProcess::start(&backend);
//!     let out = std::process::Command::new(bin("adapterctl"))
//!         .args(["--url", &server.url, "pull", "acme/bot@1.0.0", "-o", "out"])
//!         .output()
//!         .unwrap();
//!     assert!(!out.status.success(), "{stack}: pulled from an empty registry\n{}", server.logs());
//!     let hostile = http("GET", &format!("{}/v1/blobs/sha256:zz", server.url), &[], b"");
//!     assert_eq!(hostile.status, 400, "{stack}");
//! }
//! ```
//!
//! Environment variables (exported by `scripts/services.sh`):
//!
//! | variable | meaning |
//! |---|---|
//! | `ADAPTER_REGISTRY_TEST_POSTGRES` | admin URL of a PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:5432/postgres` |
//! | `ADAPTER_REGISTRY_TEST_S3_ENDPOINT` | an S3 endpoint without auth (moto), e.g. `http://127.0.0.1:5000` |
//! | `ADAPTER_REGISTRY_REQUIRE_SERVICES` | `1` (set by CI): a missing service is a failure, not a skip |

#![forbid(unsafe_code)]

mod backend;
mod http;
mod postgres;
mod rng;
mod s3;
mod server;

pub use backend::Backend;
pub use http::{HttpResponse, http, try_http};
pub use postgres::PgDatabase;
pub use rng::Rng;
pub use s3::S3Bucket;
pub use server::{ServerProcess, start_test_worker, start_worker};

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Admin URL of the PostgreSQL server used by the scale-out stack.
pub const ENV_POSTGRES: &str = "ADAPTER_REGISTRY_TEST_POSTGRES";
/// Endpoint of the S3 API (moto) used by the scale-out stack.
pub const ENV_S3_ENDPOINT: &str = "ADAPTER_REGISTRY_TEST_S3_ENDPOINT";
/// `1` makes missing services a failure instead of a skip (CI sets it).
pub const ENV_REQUIRE_SERVICES: &str = "ADAPTER_REGISTRY_REQUIRE_SERVICES";

/// The path of a binary built from this workspace, e.g. `bin("adapterctl")`.
///
/// Binaries live in `target/<profile>/`. A test executable runs from
/// `target/<profile>/deps/`, a binary such as a benchmark from `target/<profile>/`
/// itself; both are handled.
///
/// # Panics
/// If the binary does not exist, with a message saying how to build it.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the running executable");
    let mut dir = exe
        .parent()
        .expect("the running executable has no parent directory")
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    bin_in(&dir, name)
}

/// [`bin`] for an explicit directory (split out so the error path is testable).
fn bin_in(dir: &std::path::Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary `{name}` not found at {}: run `cargo build --workspace --bins` first \
             (with the same profile as the tests)",
            path.display()
        );
    }
    path
}

/// Run `adapter-registry ARGS --json` (an offline command such as `gc` or `fsck`) on
/// `backend`'s stack: its exit code and the JSON it printed.
///
/// # Panics
/// If the binary cannot run or its stdout is not JSON.
pub fn admin_json(backend: &Backend, args: &[&str]) -> (i32, serde_json::Value) {
    let out = std::process::Command::new(bin("adapter-registry"))
        .args(args)
        .args(backend.server_args())
        .arg("--json")
        .envs(backend.server_env())
        .output()
        .expect("running adapter-registry");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// An alias history (`GET …/aliases/{alias}/history`, `adapterctl alias history --json`) as
/// its moves, oldest first: `(from, to)`, `from` null for the first.
pub fn alias_moves(history: &serde_json::Value) -> Vec<(serde_json::Value, serde_json::Value)> {
    history["entries"]
        .as_array()
        .expect("a history has entries")
        .iter()
        .map(|m| (m["from"].clone(), m["to"].clone()))
        .collect()
}

/// The lines of a text file a test process appends to (none while it does not exist).
pub fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Poll `f` every 20 ms until it returns `Some`.
///
/// # Panics
/// After `timeout`, naming `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether missing services must fail the run (`ADAPTER_REGISTRY_REQUIRE_SERVICES=1`).
pub fn require_services() -> bool {
    std::env::var(ENV_REQUIRE_SERVICES).is_ok_and(|v| v == "1")
}

/// A storage stack a server can run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stack {
    /// SQLite file and local-filesystem blobs in the data directory (the default).
    Embedded,
    /// PostgreSQL metadata and S3 blobs.
    Scaleout,
}

impl std::fmt::Display for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stack::Embedded => "embedded (SQLite + files)",
            Stack::Scaleout => "scale-out (PostgreSQL + S3)",
        })
    }
}

/// The stacks a suite should run against.
///
/// [`Stack::Embedded`] always; [`Stack::Scaleout`] when both `ADAPTER_REGISTRY_TEST_POSTGRES`
/// and `ADAPTER_REGISTRY_TEST_S3_ENDPOINT` are set. When they are not, a note is printed to
/// stderr and the scale-out stack is skipped.
///
/// # Panics
/// If they are not set and [`require_services`] is true, so CI fails instead of skipping.
pub fn stacks() -> Vec<Stack> {
    let configured = |var| std::env::var(var).is_ok_and(|v| !v.is_empty());
    select_stacks(
        configured(ENV_POSTGRES),
        configured(ENV_S3_ENDPOINT),
        require_services(),
    )
}

/// [`stacks`] for given facts (split out so it is testable without touching the
/// process environment).
fn select_stacks(postgres: bool, s3: bool, required: bool) -> Vec<Stack> {
    let missing: Vec<&str> = [(ENV_POSTGRES, postgres), (ENV_S3_ENDPOINT, s3)]
        .into_iter()
        .filter(|(_, set)| !set)
        .map(|(var, _)| var)
        .collect();
    if missing.is_empty() {
        return vec![Stack::Embedded, Stack::Scaleout];
    }
    if required {
        panic!(
            "{} must be set: CI demands PostgreSQL and S3 ({ENV_REQUIRE_SERVICES}=1); \
             run the tests through ./scripts/test, which starts them",
            missing.join(" and ")
        );
    }
    eprintln!(
        "note: {} not set: the scale-out stack (PostgreSQL + S3) is skipped locally; \
         ./scripts/test starts both",
        missing.join(" and ")
    );
    vec![Stack::Embedded]
}

/// A fresh random lowercase name such as `test_3f9a0c…` (`sep` joins prefix and suffix),
/// valid as a PostgreSQL database name and an S3 bucket name.
pub(crate) fn unique_name(prefix: &str, sep: char) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    format!("{prefix}{sep}{:016x}", hasher.finish())
}

/// The value of a service variable for a unit test of that service alone: `None` (with a
/// note) when unset locally.
///
/// # Panics
/// When unset and [`require_services`] is true.
#[cfg(test)]
pub(crate) fn service_for_test(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if require_services() => panic!("{var} must be set: CI demands PostgreSQL and S3"),
        _ => {
            eprintln!("note: {var} not set: test skipped locally; ./scripts/test sets it");
            None
        }
    }
}

/// Reads a required environment variable or panics naming it.
pub(crate) fn required_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{var} is not set: the scale-out stack needs it (see scripts/services.sh)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_reports_how_to_build_a_missing_binary() {
        let dir = tempfile::tempdir().unwrap();
        let err = std::panic::catch_unwind(|| bin_in(dir.path(), "no-such-binary")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("no-such-binary"), "{msg}");
        assert!(msg.contains("cargo build --workspace --bins"), "{msg}");
    }

    #[test]
    fn bin_finds_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tool");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(bin_in(dir.path(), "tool"), path);
    }

    #[test]
    fn scaleout_runs_only_with_both_services_and_ci_refuses_to_skip_it() {
        use Stack::{Embedded, Scaleout};
        assert_eq!(select_stacks(true, true, false), [Embedded, Scaleout]);
        assert_eq!(select_stacks(true, true, true), [Embedded, Scaleout]);
        assert_eq!(select_stacks(true, false, false), [Embedded]);
        assert_eq!(select_stacks(false, false, false), [Embedded]);
        let err = std::panic::catch_unwind(|| select_stacks(true, false, true)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains(ENV_S3_ENDPOINT) && !msg.contains(ENV_POSTGRES),
            "{msg}"
        );
        assert!(msg.contains("CI demands PostgreSQL and S3"), "{msg}");
    }

    #[test]
    fn unique_names_differ_and_are_lowercase() {
        let a = unique_name("test", '_');
        let b = unique_name("test", '_');
        assert_ne!(a, b);
        assert!(a.starts_with("test_") && a.len() == 21, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
