"""The Hugging Face Hub protocol (read and push paths) against the real `huggingface_hub` client.

Starts the real `adapter-registry serve` (embedded stack, a temp data dir, port 0), pushes the
bundled base and adapter with the real adapterctl and tags the adapter `prod`, then with
`HF_ENDPOINT=<registry>/hf`:
* `snapshot_download` of the adapter by version, alias, range, `main` and commit id, and of
  the base model: every file byte-identical to the pushed directory;
* `hf_hub_download` of one file; `file_exists` of a missing file is False; model info says
  `library_name: peft` and names the base;
* a token-less client is refused (the registry is not public);
* the push path (with `HF_HUB_DISABLE_XET=1`, see docs/HF.md): `create_repo`,
  `upload_folder` (a new version 1.0.0, in `adapterctl ls`, its base recorded from the
  adapter config), `snapshot_download` of the commit byte-identical, `upload_file` of a card
  (1.0.1, inheriting the files), `create_branch` + `upload_folder(revision="2.0.0")` as
  transformers' `push_to_hub(revision=...)` does; a pickle file and broken safetensors are
  refused with the server's message and leave no version;
* once the server is gone, a commit-pinned `hf_hub_download` is served from the cache (it
  made no request).

Works with the pinned 2.x client and with an older 0.2x one (which lists files through
`siblings`); scripts/test runs both.

Usage: python scripts/check_hf.py TARGET_DIR/debug   (scripts/test runs it).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request

BIN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def files_of(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if rel.startswith(".cache") or rel.startswith(".huggingface"):
                continue
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


def start_registry(work, workers=0):
    """The real server (embedded stack, `work`/data, port 0) with the bundled base pushed as
    example/tiny-llama@1.0.0 and the adapter as acme/support-bot@1.0.0 (tagged `prod`) by the
    real adapterctl; the client's environment pointed at it; `workers` job workers in the
    server. Returns (server, url, token, ctl); the caller terminates the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADAPTER", "HF_"))}
    server = subprocess.Popen(
        [os.path.join(BIN, "adapter-registry"), "serve", "--listen", "127.0.0.1:0",
         "--data-dir", os.path.join(work, "data"), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
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
            return subprocess.run([os.path.join(BIN, "adapterctl"), *args], env=ctl_env,
                                  check=True, stdout=subprocess.PIPE, text=True).stdout

        ctl("push", os.path.join(EXAMPLES, "tiny-llama"), "--name", "example/tiny-llama",
            "--version", "1.0.0")
        ctl("push", os.path.join(EXAMPLES, "tiny-llama-lora"), "--name", "acme/support-bot",
            "--version", "1.0.0", "--base", "example/tiny-llama@1.0.0")
        ctl("tag", "acme/support-bot@1.0.0", "prod")
    except BaseException:
        server.terminate()
        raise

    os.environ["HF_ENDPOINT"] = url + "/hf"
    os.environ["HF_TOKEN"] = token
    os.environ["HF_HUB_CACHE"] = os.path.join(work, "hf-cache")
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    # The registry speaks LFS, not Xet: with hf_xet installed, 2.x uploads through Xet
    # unless this is set (docs/HF.md).
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    return server, url, token, ctl


def main():
    work = tempfile.mkdtemp(prefix="check-hf-")
    server, url, token, ctl = start_registry(work)
    try:
        import huggingface_hub as hh
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        api = HfApi(token=token)
        info = api.model_info("acme/support-bot", revision="prod")
        commit = info.sha
        assert re.fullmatch(r"[0-9a-f]{40}", commit), commit
        assert info.card_data["library_name"] == "peft", info.card_data
        assert info.card_data["base_model"] == "example/tiny-llama", info.card_data
        assert {s.rfilename for s in info.siblings} == {
            "adapter_config.json", "adapter_model.safetensors"}, info.siblings

        want = files_of(os.path.join(EXAMPLES, "tiny-llama-lora"))
        for rev in ["1.0.0", "prod", "^1", "main", commit]:
            d = snapshot_download("acme/support-bot", revision=rev, token=token,
                                  local_dir=os.path.join(work, "snap-" + rev.replace("^", "r")))
            got = files_of(d)
            assert got == want, f"revision {rev}: {sorted(got)} != {sorted(want)}"
        base = snapshot_download("example/tiny-llama", revision="1.0.0", token=token)
        assert files_of(base) == files_of(os.path.join(EXAMPLES, "tiny-llama")), "the base model"

        one = hf_hub_download("acme/support-bot", "adapter_config.json", revision=commit,
                              token=token)
        with open(one, "rb") as f:
            assert f.read() == want["adapter_config.json"]
        assert api.file_exists("acme/support-bot", "adapter_config.json", revision="1.0.0")
        assert not api.file_exists("acme/support-bot", "adapter_model.bin", revision="1.0.0")

        try:
            hf_hub_download("acme/support-bot", "adapter_config.json", revision="1.0.0",
                            token=False, cache_dir=os.path.join(work, "anon-cache"))
            raise AssertionError("a token-less client was served")
        except (HfHubHTTPError, LocalEntryNotFoundError) as e:
            refused = type(e).__name__

        pushed = push(api, url, token, ctl, work)
    finally:
        server.terminate()
        server.wait()

    # The server is gone: a commit-pinned file comes from the cache without a request.
    again = hf_hub_download("acme/support-bot", "adapter_config.json", revision=commit,
                            token=token)
    assert again == one
    print(f"huggingface_hub {hh.__version__}: snapshot_download by version, alias, range, main "
          f"and commit {commit[:12]}… and of the base byte-identical; a token-less client "
          f"refused ({refused}); a commit-pinned file served from the cache with the server down; "
          f"pushed {pushed}")


def push(api, url, token, ctl, work):
    """The push path: returns what was pushed, for the summary line."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    def v1(path):
        req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def versions():
        return [v["version"] for v in v1("/v1/adapters/acme/pushed/versions")["versions"]]

    adapter = os.path.join(EXAMPLES, "tiny-llama-lora")
    repo_url = api.create_repo("acme/pushed", exist_ok=True)
    assert str(repo_url).endswith("/hf/models/acme/pushed"), repo_url
    first = api.upload_folder(folder_path=adapter, repo_id="acme/pushed",
                              commit_message="Initial adapter", commit_description="from CI")
    assert re.fullmatch(r"[0-9a-f]{40}", first.oid), first
    assert versions() == ["1.0.0"], versions()
    info = v1("/v1/adapters/acme/pushed/versions/1.0.0")
    assert info["manifest"]["metadata"]["commit"] == {
        "summary": "Initial adapter", "description": "from CI"}, info["manifest"]["metadata"]
    # adapter_config.json names example/tiny-llama, which is registered: recorded, pinned.
    assert info["summary"]["base"]["reference"] == "example/tiny-llama@1.0.0", info["summary"]
    listed = json.loads(ctl("--json", "ls", "acme/pushed"))
    assert "1.0.0" in json.dumps(listed), listed
    got = files_of(snapshot_download("acme/pushed", revision=first.oid, token=token,
                                     local_dir=os.path.join(work, "pushed-1")))
    assert got == files_of(adapter), sorted(got)

    card = b"---\nbase_model: example/tiny-llama\nlibrary_name: peft\n---\n# Pushed\n"
    second = api.upload_file(path_or_fileobj=card, path_in_repo="README.md",
                             repo_id="acme/pushed", commit_message="Add a card")
    assert versions() == ["1.0.1", "1.0.0"], versions()
    got = files_of(snapshot_download("acme/pushed", revision="main", token=token,
                                     local_dir=os.path.join(work, "pushed-2")))
    assert got == dict(files_of(adapter), **{"README.md": card}), sorted(got)
    assert api.model_info("acme/pushed").sha == second.oid

    # What transformers' push_to_hub(revision=...) does: a branch, then a commit to it.
    api.create_branch("acme/pushed", branch="2.0.0", exist_ok=True)
    api.upload_folder(folder_path=adapter, repo_id="acme/pushed", revision="2.0.0",
                      commit_message="Two")
    assert versions() == ["2.0.0", "1.0.1", "1.0.0"], versions()

    # Without HF_HUB_DISABLE_XET, a client with hf_xet asks hf_xet to fetch a Xet token: the
    # registry's 501 there stops the push before any commit (hf_xet shows the status and the
    # URL, not the body), and nothing changes.
    import huggingface_hub.constants as constants
    if hasattr(constants, "HF_HUB_DISABLE_XET"):
        constants.HF_HUB_DISABLE_XET = False
        try:
            api.upload_file(path_or_fileobj=os.path.join(adapter, "adapter_config.json"),
                            path_in_repo="extra.json", repo_id="acme/pushed",
                            commit_message="through Xet")
            raise AssertionError("a Xet upload went through")
        except Exception as e:  # hf_xet raises a plain ConnectionError
            assert "501" in str(e) and "xet-write-token" in str(e), repr(e)
        finally:
            constants.HF_HUB_DISABLE_XET = True
        assert versions() == ["2.0.0", "1.0.1", "1.0.0"], versions()

    # Hostile pushes: refused with the server's reason; no version appears.
    for name, payload, reason in [
        ("adapter_model.bin", b"not really a pickle", "pickle"),
    ]:
        try:
            api.upload_file(path_or_fileobj=payload, path_in_repo=name, repo_id="acme/pushed",
                            commit_message="hostile")
            raise AssertionError(f"{name} was accepted")
        except HfHubHTTPError as e:
            assert reason in str(e), str(e)
    broken = os.path.join(work, "broken")
    shutil.copytree(adapter, broken)
    with open(os.path.join(broken, "adapter_model.safetensors"), "r+b") as f:
        f.write((2**63).to_bytes(8, "little"))
    try:
        api.upload_folder(folder_path=broken, repo_id="acme/pushed", commit_message="broken")
        raise AssertionError("broken safetensors were accepted")
    except HfHubHTTPError as e:
        assert e.response.status_code == 422, e
    assert versions() == ["2.0.0", "1.0.1", "1.0.0"], versions()
    return "1.0.0, 1.0.1 and 2.0.0 with upload_folder/upload_file, refused a pickle and broken safetensors"


if __name__ == "__main__":
    main()
