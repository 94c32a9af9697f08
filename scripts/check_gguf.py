"""Cross-check `adapterctl quantise` against gguf-py (the reference reader of llama.cpp's project).

Builds a small Llama-shaped f32 model whose rows are multiples of 256 (so every K-quant is
really used), quantises it with the real adapterctl in every GGUF format, then, with gguf-py:
* reads each file (header, metadata, tensor infos);
* requires Q8_0 tensors to be byte-identical to gguf-py's own quantiser, and Q4_0 tensors to
  a numpy port of llama.cpp's (gguf-py rounds Q4_0's `x*id + 8.5` once, as a fused
  multiply-add; llama.cpp's build rounds the product first, and so do we; core/tests/
  quant_golden.rs holds every type to files written by llama.cpp itself);
* dequantises every tensor (Q4_K and Q6_K through gguf-py's decoders) and bounds the error
  against the source;
* reads the tokenizer metadata back (tokenizer.ggml.*): the model has a small byte-level
  (Llama 3 style, `gpt2`) tokenizer.json; a last run swaps in a SentencePiece-style one
  (`llama`, byte fallback) and checks its tokens, scores and types.

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


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def q4_0_llama_cpp(x):
    """quantize_row_q4_0_ref as llama.cpp builds it (no FMA): f32 product, then + 8.5."""
    blocks = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    imax = np.abs(blocks).argmax(axis=-1)[:, None]
    d = np.take_along_axis(blocks, imax, axis=-1) / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.minimum(np.trunc(blocks * inv + np.float32(8.5)), 15).astype(np.uint8)
    qs = q[:, :16] | (q[:, 16:] << 4)
    return np.concatenate([d.astype(np.float16).view(np.uint8), qs], axis=-1)


def write_byte_level_tokenizer(root):
    """Llama 3 shaped: 250 base tokens, 3 added, ids 253..255 unused. Returns what to expect."""
    vocab = {f"t{i}": i for i in range(250)}
    added = [("<|begin_of_text|>", 250, True), ("<|end_of_text|>", 251, True), ("<tool>", 252, False)]
    tj = {
        "model": {"type": "BPE", "ignore_merges": True, "byte_fallback": False, "vocab": vocab,
                  "merges": [["t", "1"], ["t 1", "0"]]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "added_tokens": [{"id": i, "content": c, "special": sp} for c, i, sp in added],
    }
    with open(os.path.join(root, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    with open(os.path.join(root, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|end_of_text|>"},
                   "add_bos_token": True, "add_eos_token": False}, f)
    tokens = list(vocab) + [c for c, _, _ in added] + [f"[PAD{i}]" for i in range(253, V)]
    return {
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [1] * 250 + [3, 3, 4] + [5] * (V - 253),
        "tokenizer.ggml.merges": ["t 1", "t\u0120" + "1 0"],
        "tokenizer.ggml.bos_token_id": 250, "tokenizer.ggml.eos_token_id": 251,
        "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False,
    }


def write_spm_tokenizer(root):
    """Llama 2 shaped: <unk> <s> </s>, 16 byte tokens, words; byte fallback."""
    words = [f"\u2581w{i}" for i in range(V - 19)]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(16)] + words
    tj = {
        "model": {"type": "BPE", "byte_fallback": True, "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": []},
        "decoder": {"type": "Sequence", "decoders": []},
        "added_tokens": [{"id": i, "content": t, "special": True} for i, t in enumerate(tokens[:3])],
    }
    with open(os.path.join(root, "tokenizer.json"), "w") as f:
        json.dump(tj, f)
    with open(os.path.join(root, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False}, f)
    return {
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [-1000.0] * V,
        "tokenizer.ggml.token_type": [3, 3, 3] + [6] * 16 + [1] * (V - 19),
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False,
    }


def field_value(field):
    """A GGUF metadata value as Python (strings decoded, arrays as lists)."""
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        if field.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode() for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if field.types[0] == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode()
    return field.parts[field.data[0]].tolist()[0]


ITEM_TYPES = {"tokenizer.ggml.tokens": "STRING", "tokenizer.ggml.merges": "STRING",
              "tokenizer.ggml.scores": "FLOAT32", "tokenizer.ggml.token_type": "INT32"}


def check_tokenizer(r, expect, label, failures):
    for key, want in expect.items():
        field = r.fields.get(key)
        if field is None:
            failures.append(f"{label}: no {key}")
            continue
        if key in ITEM_TYPES and field.types[1].name != ITEM_TYPES[key]:
            failures.append(f"{label}: {key} items are {field.types[1].name}")
        got = field_value(field)
        if got != want:
            failures.append(f"{label}: {key} = {str(got)[:200]}, expected {str(want)[:200]}")


def main():
    adapterctl = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model")
        os.mkdir(model)
        src = write_model(model)
        tok_expect = write_byte_level_tokenizer(model)
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
                    if t.tensor_type.name == "Q8_0":
                        theirs, who = quantize(ref, t.tensor_type), "gguf-py's quantiser"
                    else:
                        theirs, who = q4_0_llama_cpp(ref), "llama.cpp's Q4_0 rounding"
                    theirs = theirs.view(np.uint8).reshape(-1)
                    ours = np.asarray(t.data).view(np.uint8).reshape(-1)
                    if not np.array_equal(theirs, ours):
                        failures.append(f"{fmt} {t.name}: bytes differ from {who}")
            check_tokenizer(r, tok_expect, fmt, failures)
            if EXPECT[fmt] not in types:
                failures.append(f"{fmt}: no {EXPECT[fmt]} tensor in {sorted(types)}")
            print(f"gguf-py check {fmt}: {len(r.tensors)} tensors, types {sorted(types)}")
        spm_expect = write_spm_tokenizer(model)
        out = os.path.join(tmp, "m-spm.gguf")
        subprocess.run(
            [adapterctl, "quantise", "--local", model, "--format", "q8_0", "-o", out, "--json"],
            check=True, stdout=subprocess.DEVNULL,
        )
        check_tokenizer(gguf.GGUFReader(out), spm_expect, "spm tokenizer", failures)
        print("gguf-py check tokenizer metadata: gpt2 (byte-level) and llama (byte fallback)")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
