"""The Hugging Face Hub protocol's read path against the real `huggingface_hub` client.

Starts the real `adapter-registry serve` (embedded stack, a temp data dir, port 0), pushes the
bundled base and adapter with the real adapterctl and tags the adapter `prod`, then with
`HF_ENDPOINT=<registry>/hf`:
* `snapshot_download` of the adapter by version, alias, range, `main` and commit id, and of
  the base model: every file byte-identical to the pushed directory;
* `hf_hub_download` of one file; `file_exists` of a missing file is False; model info says
  `library_name: peft` and names the base;
* a token-less client is refused (the registry is not public);
* once the server is gone, a commit-pinned `hf_hub_download` is served from the cache (it
  made no request).

Usage: python scripts/check_hf.py TARGET_DIR/debug   (scripts/test runs it).
"""

import os
import re
import subprocess
import sys
import tempfile

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


def main():
    work = tempfile.mkdtemp(prefix="check-hf-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADAPTER", "HF_"))}
    server = subprocess.Popen(
        [os.path.join(BIN, "adapter-registry"), "serve", "--listen", "127.0.0.1:0",
         "--data-dir", os.path.join(work, "data"), "--workers", "0"],
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
            subprocess.run([os.path.join(BIN, "adapterctl"), *args], env=ctl_env, check=True,
                           stdout=subprocess.DEVNULL)

        ctl("push", os.path.join(EXAMPLES, "tiny-llama"), "--name", "example/tiny-llama",
            "--version", "1.0.0")
        ctl("push", os.path.join(EXAMPLES, "tiny-llama-lora"), "--name", "acme/support-bot",
            "--version", "1.0.0", "--base", "example/tiny-llama@1.0.0")
        ctl("tag", "acme/support-bot@1.0.0", "prod")

        os.environ["HF_ENDPOINT"] = url + "/hf"
        os.environ["HF_HUB_CACHE"] = os.path.join(work, "hf-cache")
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
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
    finally:
        server.terminate()
        server.wait()

    # The server is gone: a commit-pinned file comes from the cache without a request.
    again = hf_hub_download("acme/support-bot", "adapter_config.json", revision=commit,
                            token=token)
    assert again == one
    print(f"huggingface_hub {hh.__version__}: snapshot_download by version, alias, range, main "
          f"and commit {commit[:12]}… and of the base byte-identical; a token-less client "
          f"refused ({refused}); a commit-pinned file served from the cache with the server down")


if __name__ == "__main__":
    main()
