"""PEFT and transformers against the registry's Hugging Face Hub protocol (docs/HF.md).

With the registry of scripts/check_hf.py (the real server and adapterctl; the bundled base
as example/tiny-llama@1.0.0, the adapter as acme/support-bot@1.0.0, tagged `prod`) and
`HF_ENDPOINT` pointing at it:
* transformers loads the base by repo id from the registry (`AutoModelForCausalLM`, a
  sharded checkpoint: it probes for `model.safetensors` first and needs `EntryNotFound`);
* `PeftModel.from_pretrained(base, "acme/support-bot", revision="prod")` gives the same
  logits, bit for bit, as the adapter loaded from its directory on disk;
* `model.push_to_hub("acme/peft-pushed")` (transformers' PushToHubMixin: create_repo, a card
  validated with validate-yaml, preupload, LFS, commit) makes version 1.0.0, recorded against
  the registered base its config names; `push_to_hub(..., revision="2.0.0")` (create_branch
  first) makes 2.0.0; loading the pushed adapter back gives the same logits again.

Runs on CPU torch. Usage: python scripts/check_hf_peft.py TARGET_DIR/debug, in a venv with
torch, transformers and peft (scripts/test makes one).
"""

import json
import os
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_hf import EXAMPLES, start_registry  # noqa: E402


def main():
    work = tempfile.mkdtemp(prefix="check-hf-peft-")
    server, url, token, _ = start_registry(work)
    try:
        import peft
        import torch
        import transformers
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        torch.manual_seed(0)
        ids = torch.randint(0, 256, (2, 16))

        def logits(model):
            model.eval()
            with torch.no_grad():
                return model(input_ids=ids).logits

        def base_from_registry():
            return AutoModelForCausalLM.from_pretrained(
                "example/tiny-llama", revision="1.0.0", dtype=torch.float32)

        on_disk = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(
                os.path.join(EXAMPLES, "tiny-llama"), dtype=torch.float32),
            os.path.join(EXAMPLES, "tiny-llama-lora"))
        want = logits(on_disk)

        from_hub = PeftModel.from_pretrained(base_from_registry(), "acme/support-bot",
                                             revision="prod")
        got = logits(from_hub)
        assert torch.equal(got, want), f"max difference {(got - want).abs().max()}"
        assert not torch.equal(want, logits(base_from_registry())), "the adapter changed nothing"

        from_hub.push_to_hub("acme/peft-pushed", commit_message="From PEFT")
        from_hub.push_to_hub("acme/peft-pushed", commit_message="Pinned", revision="2.0.0")

        def v1(path):
            req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req) as r:
                return json.load(r)

        versions = [v["version"] for v in v1("/v1/adapters/acme/peft-pushed/versions")["versions"]]
        assert versions == ["2.0.0", "1.0.0"], versions
        info = v1("/v1/adapters/acme/peft-pushed/versions/1.0.0")
        assert info["summary"]["base"]["reference"] == "example/tiny-llama@1.0.0", info["summary"]
        assert info["manifest"]["metadata"]["commit"]["summary"] == "From PEFT"
        files = sorted(f["path"] for f in info["manifest"]["files"])
        assert files == ["README.md", "adapter_config.json", "adapter_model.safetensors"], files

        pushed = PeftModel.from_pretrained(base_from_registry(), "acme/peft-pushed",
                                           revision="2.0.0")
        again = logits(pushed)
        assert torch.equal(again, want), f"max difference {(again - want).abs().max()}"
    finally:
        server.terminate()
        server.wait()
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch "
          f"{torch.__version__}: the base loaded from the registry by repo id; "
          f"PeftModel.from_pretrained(revision='prod') equal to the adapter on disk (logits bit "
          f"for bit); push_to_hub made 1.0.0 (base recorded) and 2.0.0, which load back equal")


if __name__ == "__main__":
    main()
