#!/usr/bin/env python3
"""API fuzzing: schemathesis against the real server's /openapi.json (docs/RELIABILITY.md,
"API fuzzing").

    scripts/schemathesis.py BIN_DIR [--max-examples N] [--seed S] [--phases P] [--max-time T]

Starts the real `adapter-registry serve` (embedded stack: SQLite + files in a temp data dir,
port 0, one job worker), pushes the bundled example base and adapter with the real adapterctl
(scripts/check_hf.py's `start_registry`), then runs schemathesis with every check (`--checks
all`, settings in scripts/schemathesis.toml): as the first admin (its token, from
`<data>/admin.token`), without a token, and last, alone, token revocation as the admin (the
stateful phase finds the admin's own token id and revokes it). Passing is zero failures in
every run; the exit status is non-zero otherwise. Reports
(JUnit, and a pytest file that replays each failure) go to $SCHEMATHESIS_REPORT_DIR (default:
a temp dir, printed). schemathesis runs from the venv named by $SCHEMATHESIS (default
/var/tmp/adapter-registry-venv-schemathesis/bin/schemathesis; scripts/test creates it).
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The registry of scripts/check_hf.py (real server, data pushed with the real adapterctl); it
# reads the binaries' directory from argv[1], as this script does.
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from check_hf import start_registry  # noqa: E402


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
    # One job worker, so that the jobs the data's push queued end (a job's event stream lasts
    # until then).
    server, url, token, _ = start_registry(work, workers=1)
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
    print(f"schemathesis: reports in {report_dir}")
    if failed:
        print("schemathesis: FAILED:", ", ".join(failed), file=sys.stderr)
        sys.exit(1)
    print("schemathesis: no failures")


if __name__ == "__main__":
    main()
