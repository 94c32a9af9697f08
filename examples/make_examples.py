#!/usr/bin/env python3
"""Writes the example model and adapters under examples/ (standard library only).

tiny-llama/       a 2-layer Llama-shaped base (hidden 64, GQA 4 query / 2 key-value heads,
                  intermediate 172, vocab 256), BF16, sharded in two files with an index,
                  exactly as transformers' save_pretrained lays it out.
tiny-llama-lora/  a LoRA adapter for it laid out as PEFT's save_pretrained writes one:
                  r=8, lora_alpha=16, q/k/v/o, with a rank_pattern entry, F32 weights,
                  tensor names `base_model.model.<module>.lora_{A,B}.weight`.

The values are deterministic (a linear congruential generator), so the files, and the
numbers `adapterctl inspect` prints for them, are stable. Run: python3 examples/make_examples.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, HEADS, KV_HEADS, INTER, VOCAB, LAYERS = 64, 4, 2, 172, 256, 2
HEAD_DIM = HIDDEN // HEADS


class Rng:
    def __init__(self, seed):
        self.state = seed

    def uniform(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return ((self.state >> 11) / float(1 << 53)) * 2.0 - 1.0


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        bits += 0x7FFF + ((bits >> 16) & 1)  # round to nearest even, as torch does
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), written in the given order."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad to 8 bytes as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def base_tensors(rng):
    shapes = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for i in range(LAYERS):
        p = "model.layers.%d." % i
        shapes += [
            (p + "input_layernorm.weight", [HIDDEN]),
            (p + "self_attn.q_proj.weight", [HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.k_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.v_proj.weight", [KV_HEADS * HEAD_DIM, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HEADS * HEAD_DIM]),
            (p + "post_attention_layernorm.weight", [HIDDEN]),
            (p + "mlp.gate_proj.weight", [INTER, HIDDEN]),
            (p + "mlp.up_proj.weight", [INTER, HIDDEN]),
            (p + "mlp.down_proj.weight", [HIDDEN, INTER]),
        ]
    shapes += [("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]
    out = []
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        if name.endswith("norm.weight"):
            values = [1.0] * n
        else:
            values = [rng.uniform() * 0.05 for _ in range(n)]
        out.append((name, "BF16", shape, bf16_bytes(values)))
    return out


def write_base():
    root = os.path.join(HERE, "tiny-llama")
    os.makedirs(root, exist_ok=True)
    tensors = base_tensors(Rng(1))
    half = len(tensors) // 2
    shards = [tensors[:half], tensors[half:]]
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        write_safetensors(os.path.join(root, name), sorted(shard), {"format": "pt"})
        for t in shard:
            weight_map[t[0]] = name
            total += len(t[3])
    with open(os.path.join(root, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        f.write("\n")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "num_hidden_layers": LAYERS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def write_adapter():
    root = os.path.join(HERE, "tiny-llama-lora")
    os.makedirs(root, exist_ok=True)
    rng = Rng(2)
    config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "example/tiny-llama",
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": 8,
        "rank_pattern": {"model.layers.1.self_attn.q_proj": 16},
        "revision": None,
        "target_modules": ["q_proj", "v_proj", "k_proj", "o_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }
    out_features = {"q_proj": HEADS * HEAD_DIM, "k_proj": KV_HEADS * HEAD_DIM, "v_proj": KV_HEADS * HEAD_DIM, "o_proj": HIDDEN}
    in_features = {"q_proj": HIDDEN, "k_proj": HIDDEN, "v_proj": HIDDEN, "o_proj": HEADS * HEAD_DIM}
    tensors = []
    for i in range(LAYERS):
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"]:
            module = "model.layers.%d.self_attn.%s" % (i, proj)
            r = config["rank_pattern"].get(module, config["r"])
            a = [rng.uniform() * 0.1 for _ in range(r * in_features[proj])]
            b = [rng.uniform() * 0.01 for _ in range(out_features[proj] * r)]
            prefix = "base_model.model." + module
            tensors.append((prefix + ".lora_A.weight", "F32", [r, in_features[proj]], f32_bytes(a)))
            tensors.append((prefix + ".lora_B.weight", "F32", [out_features[proj], r], f32_bytes(b)))
    write_safetensors(os.path.join(root, "adapter_model.safetensors"), sorted(tensors), {"format": "pt"})
    with open(os.path.join(root, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    write_base()
    write_adapter()
