#!/usr/bin/env python3
"""API fuzzing: schemathesis against the real server's /openapi.json (docs/RELIABILITY.md,
"API fuzzing").

    scripts/schemathesis.py BIN_DIR [--max-examples N] [--seed S] [--phases P] [--max-time T]

Starts the real `adapter-registry serve` (embedded stack: SQLite + files in a temp data dir,
port 0, one job worker), pushes the bundled example base and adapter with the real adapterctl
(so that the spec's examples name things that exist), then runs schemathesis twice with every
check (`--checks all`): as the first admin (its token, from `<data>/admin.token`) and without a
token. Passing is zero failures in both runs; the exit status is non-zero otherwise. Reports
(JUnit, and a pytest file that replays each failure) go to $SCHEMATHESIS_REPORT_DIR (default:
a temp dir, printed). schemathesis runs from the venv named by $SCHEMATHESIS (default
/var/tmp/adapter-registry-venv-schemathesis/bin/schemathesis; scripts/test creates it).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def start_registry(bin_dir, work):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER")}
    server = subprocess.Popen(
        [os.path.join(bin_dir, "adapter-registry"), "serve", "--listen", "127.0.0.1:0",
         "--data-dir", os.path.join(work, "data"), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(work, "server.log"), "w"),
        env=env, text=True,
    )
    try:
        url = None
        for line in server.stdout:
            m = re.match(r"listening on (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "the server did not start"
        with open(os.path.join(work, "data", "admin.token")) as f:
            token = f.read().strip()
        ctl_env = dict(env, ADAPTERCTL_URL=url, ADAPTERCTL_TOKEN=token, HOME=work)

        def ctl(*args):
            subprocess.run([os.path.join(bin_dir, "adapterctl"), *args], env=ctl_env,
                           check=True, stdout=subprocess.DEVNULL)

        ctl("push", os.path.join(EXAMPLES, "tiny-llama"), "--name", "example/tiny-llama",
            "--version", "1.0.0")
        ctl("push", os.path.join(EXAMPLES, "tiny-llama-lora"), "--name", "acme/support-bot",
            "--version", "1.0.0", "--base", "example/tiny-llama@1.0.0")
        ctl("tag", "acme/support-bot@1.0.0", "prod")
    except BaseException:
        server.terminate()
        raise
    return server, url, token


def run(schemathesis, url, args, work, report_dir, name, headers, extra):
    # NUL is refused in every string the server reads (names, JSON, headers: traversal.rs),
    # a rule the schemas do not repeat on each string.
    cmd = [schemathesis, "--config-file", os.path.join(ROOT, "scripts", "schemathesis.toml"),
           "run", url + "/openapi.json", "--checks", "all", "--generation-allow-x00", "false",
           "--max-examples", str(args.max_examples), "--phases", args.phases,
           "--workers", "1", "--no-color", "--output-truncate", "true",
           "--generation-database", "none",
           "--report", "junit,pytest", "--report-dir", os.path.join(report_dir, name)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.max_time is not None:
        cmd += ["--max-time", str(args.max_time)]
    for h in headers:
        cmd += ["-H", h]
    cmd += extra
    print(f"schemathesis ({name}):", " ".join(c if "Bearer" not in c else "Authorization: Bearer ***" for c in cmd[1:]), flush=True)
    # In the temp dir: schemathesis keeps its own state (`.schemathesis/`) where it runs.
    return subprocess.run(cmd, cwd=work).returncode


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bin_dir")
    p.add_argument("--max-examples", type=int, default=10)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    p.add_argument("--max-time", type=int, default=None)
    p.add_argument("--only", choices=["admin", "anonymous"], default=None)
    args = p.parse_args()
    schemathesis = os.environ.get(
        "SCHEMATHESIS", "/var/tmp/adapter-registry-venv-schemathesis/bin/schemathesis")
    work = tempfile.mkdtemp(prefix="schemathesis-")
    report_dir = os.environ.get("SCHEMATHESIS_REPORT_DIR") or os.path.join(work, "reports")
    server, url, token = start_registry(os.path.abspath(args.bin_dir), work)
    failed = []
    try:
        admin = [f"Authorization: Bearer {token}"]
        # Revoking a token is fuzzed last, alone: the stateful phase finds the admin token's
        # own id (GET /v1/tokens) and revokes it, after which every request is a 401.
        runs = [("admin", admin, ["--exclude-operation-id", "revoke_token"]),
                ("anonymous", [], []),
                ("admin-revoke", admin, ["--include-operation-id", "revoke_token"])]
        for name, headers, extra in runs:
            if args.only in (None, name.split("-")[0]) and run(
                    schemathesis, url, args, work, report_dir, name, headers, extra):
                failed.append(name)
        if server.poll() is not None:
            failed.append(f"the server exited ({server.returncode})")
    finally:
        server.terminate()
        server.wait()
    print(f"schemathesis: reports in {report_dir}; server log {work}/server.log")
    if failed:
        print("schemathesis: FAILED:", ", ".join(failed), file=sys.stderr)
        sys.exit(1)
    print("schemathesis: no failures")


if __name__ == "__main__":
    main()
