#!/usr/bin/env python3
"""llama_cpp_peer: `adapterctl quantise --local` against llama.cpp's own quantiser on the same
model, the same cores and the same bytes. Run through bench/llama_cpp_peer.sh, which builds
llama-cpp-python (llama.cpp from source) once into a venv outside the repository.

Benchmark (default): writes a random Llama-shaped f32 model (safetensors, Hugging Face names),
its f32 GGUF with gguf-py (llama.cpp names, q/k rows permuted as convert_hf_to_gguf.py does),
then per type runs, paired and alternating, `llama_model_quantize` (pure, nthread = --threads)
and `adapterctl quantise --local --threads N`, and prints the median seconds, the ratio, each
one's peak RSS and whether every tensor's bytes are identical. It is a benchmark, not a test.

Fixtures (--fixtures DIR --model MODEL_DIR): quantises MODEL_DIR (written by
`ADAPTER_GOLDEN_MODEL=MODEL_DIR cargo test -p adapter-core --test quant_golden`) with
llama.cpp into DIR/tiny-<type>.gguf, the files core/tests/quant_golden.rs holds our output to.
"""

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import gguf

# llama_ftype for each type (llama.h): every 2-D tensor gets the type with `pure`.
FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k": 14, "q6_k": 18}
SIZES = {
    # hidden, intermediate, layers, vocab, heads, kv heads
    "full": (4096, 11008, 2, 32000, 32, 32),
    "small": (1024, 2816, 2, 32000, 16, 16),
}


def write_model(d, size, seed=1):
    """A random Llama-shaped f32 checkpoint: config.json + model.safetensors."""
    hidden, inter, layers, vocab, heads, kv = SIZES[size]
    tensors = {
        "model.embed_tokens.weight": (vocab, hidden),
        "lm_head.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
    }
    kv_rows = hidden // heads * kv
    for i in range(layers):
        p = f"model.layers.{i}"
        tensors[f"{p}.self_attn.q_proj.weight"] = (hidden, hidden)
        tensors[f"{p}.self_attn.k_proj.weight"] = (kv_rows, hidden)
        tensors[f"{p}.self_attn.v_proj.weight"] = (kv_rows, hidden)
        tensors[f"{p}.self_attn.o_proj.weight"] = (hidden, hidden)
        tensors[f"{p}.mlp.gate_proj.weight"] = (inter, hidden)
        tensors[f"{p}.mlp.up_proj.weight"] = (inter, hidden)
        tensors[f"{p}.mlp.down_proj.weight"] = (hidden, inter)
        tensors[f"{p}.input_layernorm.weight"] = (hidden,)
        tensors[f"{p}.post_attention_layernorm.weight"] = (hidden,)
    os.makedirs(d, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(tensors):
        n = int(np.prod(tensors[name])) * 4
        header[name] = {"dtype": "F32", "shape": list(tensors[name]),
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(seed)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in sorted(tensors):
            left = int(np.prod(tensors[name]))
            while left:
                n = min(left, 1 << 24)
                f.write((rng.standard_normal(n, dtype=np.float32) * 0.02).tobytes())
                left -= n
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                   "hidden_size": hidden, "intermediate_size": inter,
                   "num_hidden_layers": layers, "vocab_size": vocab,
                   "num_attention_heads": heads, "num_key_value_heads": kv,
                   "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
                   "tie_word_embeddings": False}, f)


def read_safetensors(path):
    """name -> memory-mapped numpy array (F32, F16 or BF16 widened lazily by the caller)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        if info["dtype"] != "F32":
            sys.exit(f"{name}: {info['dtype']}: this script reads F32 checkpoints only")
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out


def permute(w, n_head):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def write_f32_gguf(model_dir, out):
    """The f32 GGUF llama.cpp's converter would write (names, q/k permutation, hparams)."""
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(os.path.basename(model_dir.rstrip("/")))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(0)
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    for name in sorted(tensors):
        x = tensors[name]
        if name == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "lm_head.weight":
            g = "output.weight"
        elif name == "model.norm.weight":
            g = "output_norm.weight"
        else:
            layer, rest = name[len("model.layers."):].split(".", 1)
            module, suffix = rest.rsplit(".", 1)
            g = f"blk.{layer}.{GGUF_NAMES[module]}.{suffix}"
            if module == "self_attn.q_proj":
                x = permute(x, heads)
            elif module == "self_attn.k_proj":
                x = permute(x, kv)
        w.add_tensor(g, np.ascontiguousarray(x))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# Run in a child so that its peak RSS is its own; prints the seconds of the quantise call.
LLAMA_CHILD = r"""
import ctypes, sys, time
import llama_cpp
src, dst, ftype, nthread = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = llama_cpp.llama_model_quantize_default_params()
p.nthread = nthread
p.ftype = ftype
p.pure = True
t = time.perf_counter()
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
el = time.perf_counter() - t
if rc != 0:
    sys.exit(f"llama_model_quantize returned {rc}")
print(el)
"""


def run_measured(cmd):
    """(seconds of the whole process, peak RSS in MB, stdout). The peak RSS comes from
    /usr/bin/time: a child forked from this (large) Python process would report this
    process's RSS as its own peak."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
        peak = int(rss.read().strip().splitlines()[-1]) / 1024
    return wall, peak, p.stdout


def llama_quantize(src, dst, ty, threads):
    """(seconds of llama_model_quantize, peak RSS MB of the process running it)."""
    _, rss, out = run_measured([sys.executable, "-c", LLAMA_CHILD, src, dst,
                                str(FTYPES[ty]), str(threads)])
    return float(out.strip().splitlines()[-1]), rss


def ours_quantise(adapterctl, model_dir, dst, ty, threads, cache):
    """`cache`: adapterctl's cache directory (XDG_CACHE_HOME). An empty one makes it hash the
    weights for the lineage's content digest; one a run filled answers them from its digest
    cache, as for a user who pushed, pulled or quantised those files before."""
    wall, rss, _ = run_measured(["env", f"XDG_CACHE_HOME={cache}", adapterctl, "quantise",
                                 "--local", model_dir, "--format", ty, "-o", dst, "--force",
                                 "--threads", str(threads), "--json"])
    return wall, rss


def tensor_bytes(path):
    r = gguf.GGUFReader(path)
    return {t.name: (t.tensor_type.name, bytes(np.asarray(t.data).tobytes())) for t in r.tensors}


def compare(ours, theirs):
    """[(name, type, identical, differing blocks / blocks)] over llama.cpp's tensors."""
    a, b = tensor_bytes(ours), tensor_bytes(theirs)
    rows = []
    for name in sorted(b):
        tb, bb = b[name]
        ta, ab = a.get(name, (None, b""))
        block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[tb]][1]
        n = len(bb) // block
        diff = sum(ab[i * block:(i + 1) * block] != bb[i * block:(i + 1) * block]
                   for i in range(n)) if ta == tb and len(ab) == len(bb) else n
        rows.append((name, tb, diff == 0 and ta == tb, diff, n))
    missing = sorted(set(a) - set(b))
    return rows, missing


def fixtures(args):
    os.makedirs(args.fixtures, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        f32 = os.path.join(tmp, "tiny-f32.gguf")
        write_f32_gguf(args.model, f32)
        for ty in args.types:
            dst = os.path.join(args.fixtures, f"tiny-{ty}.gguf")
            llama_quantize(f32, dst, ty, 1)
            print(f"{dst}: {os.path.getsize(dst)} bytes")


def bench(args):
    tmp = tempfile.mkdtemp(prefix="llama-peer-", dir=args.work_dir)
    try:
        model = os.path.join(tmp, "model")
        print(f"writing the {args.size} model to {model} ...", flush=True)
        write_model(model, args.size)
        f32 = os.path.join(tmp, "model-f32.gguf")
        write_f32_gguf(model, f32)
        size = os.path.getsize(os.path.join(model, "model.safetensors"))
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                    if l.startswith("model name")), "?")
        print(f"{cpu}; {os.cpu_count()} cpus; model {size / 1e9:.2f} GB f32; "
              f"{args.threads} threads each; median of {args.runs} paired runs")
        print("ours: the whole `adapterctl quantise --local` process, hashing the weights for "
              "the lineage (empty digest cache), then again with the digests cached")
        print(f"{'type':<6} {'ours s':>8} {'cached s':>9} {'llama.cpp s':>12} {'ours/theirs':>12} "
              f"{'cached':>7} {'ours RSS':>9} {'theirs RSS':>11}  tensors identical")
        for ty in args.types:
            ours_t, warm_t, theirs_t, ours_m, theirs_m = [], [], [], [], []
            a, b = os.path.join(tmp, f"ours-{ty}.gguf"), os.path.join(tmp, f"theirs-{ty}.gguf")
            for run in range(args.runs):
                t, m = llama_quantize(f32, b, ty, args.threads)
                theirs_t.append(t)
                theirs_m.append(m)
                cache = os.path.join(tmp, f"cache-{ty}-{run}")
                t, m = ours_quantise(args.adapterctl, model, a, ty, args.threads, cache)
                ours_t.append(t)
                ours_m.append(m)
                t, m = ours_quantise(args.adapterctl, model, a, ty, args.threads, cache)
                warm_t.append(t)
                ours_m.append(m)
            rows, missing = compare(a, b)
            same = sum(r[2] for r in rows)
            o, w = statistics.median(ours_t), statistics.median(warm_t)
            t = statistics.median(theirs_t)
            print(f"{ty:<6} {o:>8.2f} {w:>9.2f} {t:>12.2f} {t / o:>11.2f}× {t / w:>6.2f}× "
                  f"{max(ours_m):>6.0f} MB {max(theirs_m):>8.0f} MB  {same}/{len(rows)}",
                  flush=True)
            for name, tt, ok, diff, n in rows:
                if not ok:
                    print(f"    {name} ({tt}): {diff} of {n} blocks differ")
            if missing:
                print(f"    only in ours: {missing}")
            os.remove(a)
            os.remove(b)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--types", default="q8_0,q4_0,q4_k,q6_k")
    ap.add_argument("--work-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--adapterctl", default="target/release/adapterctl")
    ap.add_argument("--fixtures", help="write llama.cpp's GGUF files of --model here")
    ap.add_argument("--model", help="the model directory for --fixtures")
    args = ap.parse_args()
    args.types = args.types.split(",")
    if args.fixtures:
        if not args.model:
            sys.exit("--fixtures needs --model")
        fixtures(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
