//! The real `adapter-registry serve` process, started on a free port.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Backend, bin, http::try_http, unique_name};

/// How long a server may take to bind, become ready, or stop.
const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between readiness probes.
const POLL: Duration = Duration::from_millis(20);
/// How much of the logs a panic message shows.
const LOG_TAIL: usize = 6000;

/// A running `adapter-registry serve`, killed when dropped.
///
/// Its stdout is collected in memory; its stderr goes to a file in the backend's data
/// directory. Both are in [`logs`](ServerProcess::logs) and in every panic message.
#[derive(Debug)]
pub struct ServerProcess {
    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    /// The admin token the server wrote to `<data-dir>/admin.token` on its first start
    /// (read once it is ready; `None` if the file is not there).
    pub admin_token: Option<String>,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr_path: PathBuf,
    exit: Option<ExitStatus>,
}

/// Drop the caller's `ADAPTER_REGISTRY_*` settings (a developer's shell must not change
/// what a test starts), keeping the test-service variables.
fn clean_env(command: &mut Command) {
    // Fail points (a `test-hooks` build) are set per process by the test that wants them.
    command.env_remove("FAILPOINTS");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("ADAPTER_REGISTRY_") && !name.starts_with("ADAPTER_REGISTRY_TEST_") {
            command.env_remove(name.as_ref());
        }
    }
}

/// `adapter-registry worker` for the job tests: `workers` workers, test-only job kinds on, a
/// 1.5 s lease and 50 ms polling (so a killed worker's job is taken over quickly), plus
/// `extra` arguments.
pub fn start_test_worker(backend: &Backend, workers: usize, extra: &[&str]) -> Child {
    let workers = workers.to_string();
    let mut args = vec![
        "--workers",
        workers.as_str(),
        "--enable-test-jobs",
        "--job-lease-ms",
        "1500",
        "--job-poll-ms",
        "50",
    ];
    args.extend_from_slice(extra);
    start_worker(backend, &args, &[])
}

/// Start `adapter-registry worker` on `backend` with `args` and extra environment variables
/// `env` (output discarded): a job worker process a test can kill.
pub fn start_worker(backend: &Backend, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(bin("adapter-registry"));
    command.arg("worker").args(backend.server_args()).args(args);
    clean_env(&mut command);
    command
        .envs(backend.server_env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting adapter-registry worker")
}

impl ServerProcess {
    /// Starts a server on `backend` and waits until `GET /readyz` answers 200.
    ///
    /// # Panics
    /// If the binary is missing, the server exits, or it is not ready within 30 s.
    pub fn start(backend: &Backend) -> ServerProcess {
        ServerProcess::start_with(backend, &[], &[])
    }

    /// [`start`](ServerProcess::start) with extra arguments after the backend's and extra
    /// environment variables.
    ///
    /// `ADAPTER_REGISTRY_*` variables of the test process (other than the `_TEST_` ones)
    /// are not passed on, so a developer's shell settings cannot change what is tested.
    pub fn start_with(
        backend: &Backend,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        ServerProcess::start_program(&bin("adapter-registry"), backend, extra_args, extra_env)
    }

    /// [`start_with`](ServerProcess::start_with) for any program that behaves like the
    /// server (split out so the tests here can use a stand-in).
    fn start_program(
        program: &Path,
        backend: &Backend,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let stderr_path = backend
            .data_dir()
            .join(format!("{}.stderr.log", unique_name("server", '-')));
        let stderr = File::create(&stderr_path).expect("cannot create the server log file");
        let mut command = Command::new(program);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(backend.server_args())
            .args(extra_args);
        clean_env(&mut command);
        command
            .envs(backend.server_env())
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));

        // Read stdout on a thread for the life of the process (so the server never blocks
        // on a full pipe), reporting the address from the `listening on` line.
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stdout.take().expect("stdout is piped");
        let collected = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening on http://") {
                    let url = line[i + "listening on ".len()..].split_whitespace().next();
                    let _ = tx.send(url.unwrap_or_default().trim_end_matches('/').to_string());
                }
                let mut all = collected.lock().unwrap_or_else(|e| e.into_inner());
                all.push_str(&line);
                all.push('\n');
            }
        });

        let mut server = ServerProcess {
            url: String::new(),
            admin_token: None,
            child,
            stdout,
            stderr_path,
            exit: None,
        };
        let started = Instant::now();
        server.url = match rx.recv_timeout(DEADLINE) {
            Ok(url) => url,
            Err(_) => server.fail(&format!(
                "did not print `listening on http://ADDR` within {DEADLINE:?}"
            )),
        };
        server.wait_ready(started + DEADLINE);
        server.admin_token = std::fs::read_to_string(backend.data_dir().join("admin.token"))
            .ok()
            .map(|t| t.trim().to_owned());
        server
    }

    /// The admin token, for tests that need one.
    ///
    /// # Panics
    /// If the server did not write `admin.token` (its database already had tokens).
    pub fn token(&self) -> &str {
        self.admin_token
            .as_deref()
            .expect("the server wrote no admin.token (was its database new?)")
    }

    /// `("authorization", "Bearer <admin token>")`, for [`crate::http`] header lists.
    pub fn auth(&self) -> (&'static str, String) {
        ("authorization", format!("Bearer {}", self.token()))
    }

    /// Polls `GET /readyz` until it answers 200.
    fn wait_ready(&mut self, deadline: Instant) {
        let url = format!("{}/readyz", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                self.fail(&format!("exited with {status} before it was ready"));
            }
            let last = match try_http("GET", &url, &[], b"") {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("{} {}", r.status, r.text()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "GET /readyz not 200 within {DEADLINE:?} (last: {last})"
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The server's process id (e.g. to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no chance to clean up, as in a crash) and reaps it.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            self.exit = self.child.wait().ok();
        }
    }

    /// Asks the server to shut down with SIGTERM and waits for it to exit.
    ///
    /// # Panics
    /// If it is still running 30 s later (it is then killed).
    pub fn stop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !sent.is_ok_and(|s| s.success()) {
            self.fail("`kill -TERM` failed");
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                return;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("still running {DEADLINE:?} after SIGTERM"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits up to `within` for the server to exit by itself (e.g. at an armed crash point);
    /// how it ended, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while self.exit.is_none() && Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
            } else {
                std::thread::sleep(POLL);
            }
        }
        self.exit
    }

    /// How the process ended, once [`kill`](Self::kill) or [`stop`](Self::stop) reaped it.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// Everything the server wrote so far: stdout, then stderr.
    pub fn logs(&self) -> String {
        let stdout = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!(
            "--- stdout ---\n{stdout}--- stderr ({}) ---\n{stderr}",
            self.stderr_path.display()
        )
    }

    /// Kills the server and panics with `why` and the tail of its logs.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let logs = self.logs();
        let cut = logs.len().saturating_sub(LOG_TAIL);
        let cut = (cut..logs.len())
            .find(|&i| logs.is_char_boundary(i))
            .unwrap_or(0);
        panic!("adapter-registry server {why}\n{}", &logs[cut..]);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Stack;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in for /readyz: answers 503 to the first `not_ready` requests, then 200.
    fn readyz(not_ready: usize) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut buf = [0; 1024];
                let _ = stream.read(&mut buf);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let status = if n < not_ready {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        (port, seen)
    }

    /// A shell script standing in for the server binary.
    fn script(backend: &Backend, body: &str) -> PathBuf {
        let path = backend.data_dir().join("fake-server.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        let status = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        assert!(status.success());
        path
    }

    #[test]
    fn waits_for_the_listening_line_and_readiness_then_stops_with_sigterm() {
        let backend = Backend::new(&Stack::Embedded);
        let (port, probes) = readyz(3);
        let program = script(
            &backend,
            "echo \"args: $*\"; echo \"env: $EXTRA\"; echo oops >&2\n\
             echo \"listening on http://127.0.0.1:$PORT\"\nexec sleep 60",
        );
        let port = port.to_string();
        let mut server = ServerProcess::start_program(
            &program,
            &backend,
            &["--flag"],
            &[("PORT", &port), ("EXTRA", "yes")],
        );
        assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
        assert_eq!(probes.load(Ordering::SeqCst), 4, "ready after three 503s");
        let logs = server.logs();
        let data_dir = backend.data_dir().display().to_string();
        assert!(
            logs.contains(&format!(
                "args: serve --listen 127.0.0.1:0 --data-dir {data_dir} --flag"
            )),
            "{logs}"
        );
        assert!(logs.contains("env: yes") && logs.contains("oops"), "{logs}");
        server.stop();
        let status = server.exit_status().expect("reaped");
        assert!(!status.success(), "sleep dies of SIGTERM: {status}");
    }

    #[test]
    fn a_server_that_exits_early_panics_with_its_stderr() {
        let backend = Backend::new(&Stack::Embedded);
        let program = script(&backend, "echo 'error: bad flag --nope' >&2; exit 2");
        let err =
            std::panic::catch_unwind(|| ServerProcess::start_program(&program, &backend, &[], &[]))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("listening on") && msg.contains("bad flag --nope"),
            "{msg}"
        );
    }

    #[test]
    fn a_server_that_exits_before_ready_is_reported() {
        let backend = Backend::new(&Stack::Embedded);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let program = script(
            &backend,
            &format!("echo listening on http://127.0.0.1:{port}; echo dying >&2; exit 3"),
        );
        let err =
            std::panic::catch_unwind(|| ServerProcess::start_program(&program, &backend, &[], &[]))
                .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("exited with") && msg.contains("dying"),
            "{msg}"
        );
    }

    #[test]
    fn kill_reaps_the_process() {
        let backend = Backend::new(&Stack::Embedded);
        let (port, _) = readyz(0);
        let program = script(
            &backend,
            &format!("echo listening on http://127.0.0.1:{port}\nexec sleep 60"),
        );
        let mut server = ServerProcess::start_program(&program, &backend, &[], &[]);
        let pid = server.pid();
        server.kill();
        assert!(!server.exit_status().unwrap().success());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists"
        );
    }
}
