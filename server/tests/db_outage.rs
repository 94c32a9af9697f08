//! A database that goes away and comes back: a real server on a PostgreSQL instance of its
//! own (initdb'd here, so stopping it disturbs no other test). While it is down requests are
//! answered 503 `not_ready` within the pool's acquire timeout (the process lives, `/healthz`
//! says so, `/readyz` does not); once it is back the same server serves again without a
//! restart, and what was acknowledged before is whole. PostgreSQL's server binaries are
//! needed (CI has them; without them CI fails rather than skips).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use adapter_testkit::{Backend, ServerProcess, Stack, admin_json, require_services, wait_for};
use proc::{adapter_manifest, assert_version_whole, get, try_publish};
use serde_json::json;

mod proc;

/// A PostgreSQL cluster in a temporary directory, run as the `postgres` user.
struct PrivatePg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePg {
    fn init() -> Option<PrivatePg> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max();
        let Some(bin) = bin else {
            assert!(
                !require_services(),
                "PostgreSQL's server binaries are not installed"
            );
            eprintln!("skipping: PostgreSQL's server binaries are not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let chmod = Command::new("chmod").arg("755").arg(dir.path()).status();
        assert!(chmod.is_ok_and(|s| s.success()));
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let chown = Command::new("chown").arg("postgres").arg(&data).status();
        assert!(chown.is_ok_and(|s| s.success()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePg { dir, bin, port };
        pg.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"],
        );
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `runuser -u postgres -- <bin>/<tool> -D <data> ARGS`.
    fn run(&self, tool: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .arg("-D")
            .arg(self.data())
            .args(args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data().display()
        );
        let log = self.data().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-w", "-t", "60", "-l", &log, "-o", &options, "start"],
        );
    }

    /// An immediate shutdown: what a crash or a failover looks like to clients.
    fn stop(&self) {
        self.run("pg_ctl", &["-w", "-m", "immediate", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn the_server_answers_503_while_the_database_is_down_and_recovers_when_it_is_back() {
    let Some(pg) = PrivatePg::init() else {
        return;
    };
    pg.start();
    let url = pg.url();
    let backend = Backend::new(&Stack::Embedded);
    let args = ["--database-url", url.as_str(), "--db-acquire-timeout", "3s"];
    let server = ServerProcess::start_with(&backend, &args, &[]);
    let manifest = adapter_manifest(&server, b"before the outage");
    let r = try_publish(&server, "outage/bot", "1.0.0", &manifest).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());

    pg.stop();
    let during = upload_status(&server);
    for (what, r) in [
        (
            "a read",
            get(&server, "/v1/adapters/outage/bot/versions/1.0.0"),
        ),
        (
            "a publish",
            try_publish(&server, "outage/bot", "1.1.0", &manifest).unwrap(),
        ),
        ("/readyz", get(&server, "/readyz")),
    ] {
        assert_eq!(
            r.status,
            503,
            "{what} while the database is down: {}",
            r.text()
        );
        assert_eq!(
            r.json()["error"]["code"],
            "not_ready",
            "{what}: {}",
            r.text()
        );
    }
    assert_eq!(during, 503, "an upload while the database is down");
    // Liveness (what an orchestrator probes, without a token) holds: the process is fine.
    let health = adapter_testkit::http("GET", &format!("{}/healthz", server.url), &[], b"");
    assert_eq!(health.status, 200, "{}", health.text());

    pg.start();
    wait_for(
        "the server to reach the database again",
        Duration::from_secs(60),
        || (get(&server, "/readyz").status == 200).then_some(()),
    );
    assert_version_whole(&server, "outage/bot", "1.0.0");
    let r = try_publish(&server, "outage/bot", "1.1.0", &manifest).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_version_whole(&server, "outage/bot", "1.1.0");
    drop(server);
    let (code, report) = admin_json(&backend, &["fsck", "--database-url", &url]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["damaged_versions"], json!([]), "{report}");
}

/// The status of a blob upload (its bytes reach the store, its row cannot).
fn upload_status(server: &ServerProcess) -> u16 {
    proc::try_put_blob(server, b"uploaded during the outage")
        .unwrap()
        .status
}
