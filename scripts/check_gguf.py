"""Cross-check `adapterctl quantise` against gguf-py (the reference reader of llama.cpp's project).

Builds a small Llama-shaped f32 model whose rows are multiples of 256 (so every K-quant is
really used), quantises it with the real adapterctl in every GGUF format, then, with gguf-py:
* reads each file (header, metadata, tensor infos);
* requires Q8_0 and Q4_0 tensors to be byte-identical to gguf-py's own quantiser;
* dequantises every tensor (Q4_K and Q6_K through gguf-py's decoders) and bounds the error
  against the source.

Usage: python scripts/check_gguf.py PATH/TO/adapterctl   (scripts/test runs it).
"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf.quants import dequantize, quantize

H, I, V, LAYERS, HEADS = 256, 512, 256, 2, 4
# Relative RMS error bounds per format on Gaussian weights (typical values are well below).
BOUNDS = {"q8_0": 0.01, "q4_0": 0.12, "q4_k": 0.10, "q6_k": 0.03}
EXPECT = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k": "Q4_K", "q6_k": "Q6_K"}


def write_model(root):
    rng = np.random.default_rng(7)
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
        "intermediate_size": I, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS, "vocab_size": V, "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "torch_dtype": "float32",
        "tie_word_embeddings": False,
    }
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(cfg, f)
    t = {"model.embed_tokens.weight": rng.standard_normal((V, H))}
    for layer in range(LAYERS):
        p = f"model.layers.{layer}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            t[p + "self_attn." + n + ".weight"] = rng.standard_normal((H, H)) * 0.05
        t[p + "mlp.gate_proj.weight"] = rng.standard_normal((I, H)) * 0.05
        t[p + "mlp.up_proj.weight"] = rng.standard_normal((I, H)) * 0.05
        t[p + "mlp.down_proj.weight"] = rng.standard_normal((H, I)) * 0.05
        t[p + "input_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(H)
        t[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.standard_normal(H)
    t["model.norm.weight"] = np.ones(H)
    t["lm_head.weight"] = rng.standard_normal((V, H)) * 0.05
    header, blobs, off = {}, [], 0
    for k in sorted(t):
        b = t[k].astype(np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(t[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(root, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return {k: v.astype(np.float32) for k, v in t.items()}


def main():
    adapterctl = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        os.mkdir(model)
        src = write_model(model)
        embd, up = src["model.embed_tokens.weight"], src["model.layers.0.mlp.up_proj.weight"]
        for fmt, bound in BOUNDS.items():
            out = os.path.join(tmp, f"m-{fmt}.gguf")
            subprocess.run(
                [adapterctl, "quantise", "--local", model, "--format", fmt, "-o", out, "--json"],
                check=True, stdout=subprocess.DEVNULL,
            )
            r = gguf.GGUFReader(out)
            arch = r.fields["general.architecture"]
            if bytes(arch.parts[arch.data[0]]).decode() != "llama":
                failures.append(f"{fmt}: general.architecture is not llama")
            types = set()
            for t in r.tensors:
                types.add(t.tensor_type.name)
                deq = dequantize(t.data, t.tensor_type)
                if deq.size != int(np.prod(t.shape)):
                    failures.append(f"{fmt} {t.name}: {deq.size} values for shape {list(t.shape)}")
                ref = {"token_embd.weight": embd, "blk.0.ffn_up.weight": up}.get(t.name)
                if ref is None:
                    continue
                d = deq.reshape(ref.shape)
                rel = float(np.sqrt(np.mean((d - ref) ** 2)) / np.sqrt(np.mean(ref ** 2)))
                if rel > bound:
                    failures.append(f"{fmt} {t.name}: relative RMS error {rel:.4f} > {bound}")
                if t.tensor_type.name in ("Q8_0", "Q4_0"):
                    theirs = quantize(ref, t.tensor_type)
                    ours = np.asarray(t.data).reshape(theirs.shape)
                    if not np.array_equal(theirs.view(np.uint8), ours.view(np.uint8)):
                        failures.append(f"{fmt} {t.name}: bytes differ from gguf-py's quantiser")
            if EXPECT[fmt] not in types:
                failures.append(f"{fmt}: no {EXPECT[fmt]} tensor in {sorted(types)}")
            print(f"gguf-py check {fmt}: {len(r.tensors)} tensors, types {sorted(types)}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
