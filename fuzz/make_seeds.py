#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/seeds/<target>/: small valid examples of
each format plus a few edge cases. Standard library only; rerun after changing it."""
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def put(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None, pad_to=8, extra=b""):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, size in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + size]}
        data += bytes(range(size % 251)) + bytes(size - size % 251)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % pad_to)
    return struct.pack("<Q", len(raw)) + raw + data + extra


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(metadata, tensors, alignment=32, version=3):
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, ty, payload in metadata:
        out += gguf_string(key) + struct.pack("<I", ty) + payload
    for name, dims, ty, offset in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ty, offset)
    return out + bytes(-len(out) % alignment)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)

    # safetensors_header
    put("safetensors_header", "two_tensors", safetensors(
        [("a.weight", "F32", [2, 3], 24), ("b.bias", "BF16", [3], 6)],
        metadata={"format": "pt"}))
    put("safetensors_header", "empty", safetensors([]))
    put("safetensors_header", "scalar_and_zero", safetensors(
        [("s", "F64", [], 8), ("z", "I8", [0, 4], 0)]))
    put("safetensors_header", "sub_byte", safetensors([("q", "F4", [2, 4], 4)]))
    put("safetensors_header", "lora_names", safetensors([
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F16", [4, 8], 64),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F16", [8, 4], 64)]))
    put("safetensors_header", "huge_length", struct.pack("<Q", 2**64 - 1) + b"{}")
    put("safetensors_header", "trailing", safetensors([("t", "U8", [3], 3)], extra=b"x"))
    dup = b'{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    put("safetensors_header", "duplicate_key", struct.pack("<Q", len(dup)) + dup + b"\0")
    put("safetensors_header", "overlap", struct.pack("<Q", 104) + json.dumps(
        {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
         "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}},
        separators=(",", ":")).encode().ljust(104) + b"abc")

    # peft_config
    put("peft_config", "example", (EXAMPLES / "tiny-llama-lora" / "adapter_config.json").read_text())
    put("peft_config", "minimal", "{}")
    put("peft_config", "patterns", json.dumps({
        "peft_type": "LORA", "r": 16, "lora_alpha": 32.5, "use_rslora": True,
        "target_modules": "(.*decoder.*)(q|v)_proj", "rank_pattern": {"^model.layers.0": 4},
        "alpha_pattern": {"v_proj": 8}, "layers_to_transform": [0, 2],
        "layers_pattern": "layers", "modules_to_save": ["lm_head"], "bias": "lora_only",
        "init_lora_weights": "gaussian", "use_dora": True, "fan_in_fan_out": True,
        "exclude_modules": ["k_proj"], "lora_bias": True}))
    put("peft_config", "other_type", '{"peft_type":"ia3","target_modules":"all-linear"}')
    put("peft_config", "bad_types", '{"r":-1,"lora_alpha":"x","target_modules":[1]}')
    put("peft_config", "deep", "[" * 200 + "]" * 200)

    # reference
    for i, s in enumerate([
        "acme/bot", "acme/bot@1.4.2", "acme/bot@^1.4", "acme/bot@~1.2.3", "acme/bot@prod",
        "acme/bot@>=1, <2", "acme/bot@1.4.2-rc.1+build.5", "acme/bot@*", "acme/bot@1.*",
        "acme/bot@=1.2.3", "acme/bot@sha256:" + "ab" * 32, "acme/bot@sha256:XYZ",
        "a/b/c", "../x@1", "acme/bot@v1.2.3", "acme/bot@", "acme/Bot_2.x@latest",
    ]):
        put("reference", f"ref{i:02}", s)

    # manifest
    digest = "sha256:" + "0123456789abcdef" * 4
    put("manifest", "adapter", json.dumps({
        "schema": "adapter-registry.manifest.v1", "kind": "adapter",
        "files": [{"path": "adapter_model.safetensors", "size": 34800, "digest": digest},
                  {"path": "adapter_config.json", "size": 717, "digest": digest}],
        "metadata": {"base": {"reference": "example/tiny-llama@1.0.0"},
                     "training": {"epochs": 3, "lr": 2e-4}, "labels": {"team": "nlp"}}}))
    put("manifest", "model", json.dumps({
        "schema": "adapter-registry.manifest.v1", "kind": "model",
        "files": [{"path": "config.json", "size": 1, "digest": digest},
                  {"path": "sub/dir/model-00001-of-00002.safetensors", "size": 0, "digest": digest}]}))
    put("manifest", "case_collision", json.dumps({
        "schema": "adapter-registry.manifest.v1", "kind": "adapter",
        "files": [{"path": "A.json", "size": 1, "digest": digest},
                  {"path": "a.json", "size": 1, "digest": digest}]}))
    put("manifest", "file_dir", json.dumps({
        "schema": "adapter-registry.manifest.v1", "kind": "model",
        "files": [{"path": "a", "size": 1, "digest": digest},
                  {"path": "a/b", "size": 1, "digest": digest}]}))
    put("manifest", "duplicate_meta",
        '{"schema":"adapter-registry.manifest.v1","kind":"model","files":[{"path":"x","size":1,'
        f'"digest":"{digest}"}}],"metadata":{{"k":1,"k":2}}}}')
    put("manifest", "traversal", json.dumps({
        "schema": "adapter-registry.manifest.v1", "kind": "model",
        "files": [{"path": "../etc/passwd", "size": 1, "digest": digest}]}))
    put("manifest", "unicode", '{"schema":"adapter-registry.manifest.v1","kind":"model",'
        f'"files":[{{"path":"x","size":18446744073709551615,"digest":"{digest}"}}],'
        '"metadata":{"\\u00e9":"\\ud83d\\ude00","n":-0.0,"f":1e308}}')

    # gguf
    u32 = lambda v: struct.pack("<I", v)
    meta = [("general.architecture", 8, gguf_string("llama")),
            ("llama.block_count", 4, u32(2)),
            ("tokenizer.ggml.tokens", 9, u32(8) + struct.pack("<Q", 2) + gguf_string("a") + gguf_string("b")),
            ("tokenizer.ggml.scores", 9, u32(6) + struct.pack("<Q", 2) + struct.pack("<ff", 0.5, -1.0)),
            ("general.flag", 7, b"\x01"), ("general.big", 10, struct.pack("<Q", 2**40))]
    put("gguf", "llama_like", gguf(meta, [
        ("token_embd.weight", [32, 4], 0, 0),        # F32: 512 bytes
        ("blk.0.attn_q.weight", [32, 32], 8, 512),   # Q8_0: 32 rows × 34 bytes
        ("blk.0.ffn_up.weight", [256, 2], 12, 1600),  # Q4_K: 2 rows × 144 bytes
    ]))
    put("gguf", "aligned_64", gguf([("general.alignment", 4, u32(64))],
                                   [("t", [32], 1, 0), ("u", [64], 30, 64)], alignment=64))
    put("gguf", "empty", gguf([], []))
    put("gguf", "version_2", gguf([], [], version=2))
    put("gguf", "overlap", gguf([], [("a", [32], 0, 0), ("b", [32], 0, 32)]))
    put("gguf", "huge_dims", gguf([], [("h", [2**62, 1], 0, 0)]))
    # The long run's timeout (in the harness's rewrite): an alignment of 2^29.
    put("gguf", "alignment_2_29", gguf([("general.alignment", 4, u32(1 << 29))], [], alignment=8))


if __name__ == "__main__":
    main()
