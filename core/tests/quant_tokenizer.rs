//! GGUF tokenizer metadata from tokenizer.json: both llama.cpp vocab paths (SentencePiece-like
//! BPE → `llama`, byte-level BPE → `gpt2`), the special tokens, the file round trip, and
//! hostile inputs refused with a clear error.

use std::fs::File;
use std::path::Path;

use adapter_core::model::{Hashing, ModelDir};
use adapter_core::quant::convert::{Options, to_gguf};
use adapter_core::quant::gguf::{GgufWriter, MetaValue, read_gguf};
use adapter_core::quant::tokenizer::{MAX_TOKENIZER_JSON, tokenizer_metadata};
use adapter_core::quant::{GgmlType, QuantError};
use serde_json::{Value, json};

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn spm_like() -> Value {
    json!({
        "model": {"type": "BPE", "byte_fallback": true, "merges": ["▁ t", "t he"],
                  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "<0xFF>": 4,
                            "▁the": 5, "a": 6}},
        "decoder": {"type": "Sequence", "decoders": []},
        "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true},
            {"id": 1, "content": "<s>", "special": true},
            {"id": 2, "content": "</s>", "special": true},
            {"id": 7, "content": "<|im_start|>", "special": true},
            {"id": 8, "content": "<tool>", "special": false}
        ]
    })
}

fn byte_level() -> Value {
    json!({
        "model": {"type": "BPE", "ignore_merges": true, "byte_fallback": false,
                  "vocab": {"!": 0, "a": 1, "Ġa": 2, "aa": 3},
                  "merges": [["Ġ", "a"], ["a", "a"], ["a b", "c"]]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated"},
            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
        "decoder": {"type": "ByteLevel"},
        "added_tokens": [
            {"id": 4, "content": "<|begin_of_text|>", "special": true},
            {"id": 5, "content": "<|reserved|>", "special": false},
            {"id": 7, "content": "▁user", "special": false}
        ]
    })
}

fn meta(
    tj: &Value,
    tc: Option<&Value>,
    cfg: &Value,
) -> Result<Vec<(String, MetaValue)>, QuantError> {
    tokenizer_metadata(tj.to_string().as_bytes(), tc, cfg)
}

fn get<'a>(m: &'a [(String, MetaValue)], k: &str) -> &'a MetaValue {
    &m.iter()
        .find(|(key, _)| key == k)
        .unwrap_or_else(|| panic!("no {k}"))
        .1
}

fn keys(m: &[(String, MetaValue)]) -> Vec<&str> {
    m.iter()
        .map(|(k, _)| k.strip_prefix("tokenizer.").unwrap())
        .collect()
}

#[test]
fn sentencepiece_like_bpe_becomes_the_llama_vocab() {
    let tc = json!({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "unk_token": "<unk>",
                    "add_bos_token": true, "add_eos_token": false, "chat_template": "{{ x }}"});
    // config.json: pad from here; bos already set by tokenizer_config; mask out of range.
    let cfg = json!({"vocab_size": 9, "pad_token_id": 8, "bos_token_id": 5, "mask_token_id": 99});
    let m = meta(&spm_like(), Some(&tc), &cfg).unwrap();
    assert_eq!(
        keys(&m),
        [
            "ggml.model",
            "ggml.pre",
            "ggml.tokens",
            "ggml.scores",
            "ggml.token_type",
            "ggml.bos_token_id",
            "ggml.eos_token_id",
            "ggml.unknown_token_id",
            "ggml.padding_token_id",
            "ggml.add_bos_token",
            "ggml.add_eos_token",
            "chat_template"
        ]
    );
    assert_eq!(get(&m, "tokenizer.ggml.model").as_str(), Some("llama"));
    assert_eq!(get(&m, "tokenizer.ggml.pre").as_str(), Some("default"));
    assert_eq!(
        get(&m, "tokenizer.ggml.tokens").as_strings().unwrap(),
        [
            "<unk>",
            "<s>",
            "</s>",
            "<0x0A>",
            "<0xFF>",
            "▁the",
            "a",
            "<|im_start|>",
            "<tool>"
        ]
    );
    // unk/bos/eos control, byte tokens BYTE, normal, added special CONTROL, added USER_DEFINED.
    assert_eq!(
        get(&m, "tokenizer.ggml.token_type").as_i32s().unwrap(),
        [3, 3, 3, 6, 6, 1, 1, 3, 4]
    );
    assert_eq!(
        get(&m, "tokenizer.ggml.scores").as_f32s().unwrap(),
        [-1000.0; 9]
    );
    assert_eq!(get(&m, "tokenizer.ggml.bos_token_id"), &MetaValue::U32(1));
    assert_eq!(get(&m, "tokenizer.ggml.eos_token_id"), &MetaValue::U32(2));
    assert_eq!(
        get(&m, "tokenizer.ggml.unknown_token_id"),
        &MetaValue::U32(0)
    );
    assert_eq!(
        get(&m, "tokenizer.ggml.padding_token_id"),
        &MetaValue::U32(8)
    );
    assert_eq!(
        get(&m, "tokenizer.ggml.add_bos_token"),
        &MetaValue::Bool(true)
    );
    assert_eq!(
        get(&m, "tokenizer.ggml.add_eos_token"),
        &MetaValue::Bool(false)
    );
    assert_eq!(get(&m, "tokenizer.chat_template").as_str(), Some("{{ x }}"));
}

#[test]
fn byte_level_bpe_becomes_the_gpt2_vocab_with_merges_and_padding() {
    let tc = json!({"bos_token": "<|begin_of_text|>", "add_bos_token": true});
    // eos as a list (Llama 3.1) is ignored; the gpt2 path does not range-check ids.
    let cfg = json!({"vocab_size": 9, "eos_token_id": [1, 2], "pad_token_id": 1000});
    let m = meta(&byte_level(), Some(&tc), &cfg).unwrap();
    assert_eq!(
        keys(&m),
        [
            "ggml.model",
            "ggml.pre",
            "ggml.tokens",
            "ggml.token_type",
            "ggml.merges",
            "ggml.bos_token_id",
            "ggml.padding_token_id",
            "ggml.add_bos_token"
        ]
    );
    assert_eq!(get(&m, "tokenizer.ggml.model").as_str(), Some("gpt2"));
    assert_eq!(get(&m, "tokenizer.ggml.pre").as_str(), Some("llama-bpe"));
    assert_eq!(
        get(&m, "tokenizer.ggml.tokens").as_strings().unwrap(),
        [
            "!",
            "a",
            "Ġa",
            "aa",
            "<|begin_of_text|>",
            "<|reserved|>",
            "[PAD6]",
            " user",
            "[PAD8]"
        ]
    );
    // Added special → CONTROL, special-looking → CONTROL, holes UNUSED, other added
    // USER_DEFINED with ▁ as a space.
    assert_eq!(
        get(&m, "tokenizer.ggml.token_type").as_i32s().unwrap(),
        [1, 1, 1, 1, 3, 3, 5, 4, 5]
    );
    // Pair merges joined by a space; spaces inside a part become U+0120.
    assert_eq!(
        get(&m, "tokenizer.ggml.merges").as_strings().unwrap(),
        ["Ġ a", "a a", "a\u{120}b c"]
    );
    assert_eq!(get(&m, "tokenizer.ggml.bos_token_id"), &MetaValue::U32(4));
    assert_eq!(
        get(&m, "tokenizer.ggml.padding_token_id"),
        &MetaValue::U32(1000)
    );

    // Another pre-tokenizer → `default`; string merges pass through.
    let mut tj = byte_level();
    tj["pre_tokenizer"] = json!({"type": "ByteLevel", "add_prefix_space": false});
    tj["model"]["merges"] = json!(["Ġ a", "a a"]);
    let m = meta(&tj, None, &json!({"vocab_size": 9})).unwrap();
    assert_eq!(get(&m, "tokenizer.ggml.pre").as_str(), Some("default"));
    assert_eq!(
        get(&m, "tokenizer.ggml.merges").as_strings().unwrap(),
        ["Ġ a", "a a"]
    );
    // Without config.vocab_size there are as many ids as tokens: id 7 of 7 tokens is refused
    // (convert_hf_to_gguf.py asserts the same).
    let e = meta(&tj, None, &json!({})).unwrap_err();
    assert!(e.to_string().contains("not below vocab_size 7"), "{e}");
}

fn err(tj: &Value, cfg: &Value) -> String {
    let e = meta(tj, None, cfg).unwrap_err();
    e.to_string()
}

#[test]
fn hostile_tokenizers_are_refused_with_a_reason() {
    let cfg = json!({});
    let msg = tokenizer_metadata(b"{not json", None, &cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("tokenizer.json:"), "{msg}");
    let deep = "[".repeat(100_000);
    assert!(tokenizer_metadata(deep.as_bytes(), None, &cfg).is_err());
    let huge = vec![b' '; MAX_TOKENIZER_JSON + 1];
    assert!(
        tokenizer_metadata(&huge, None, &cfg)
            .unwrap_err()
            .to_string()
            .contains("at most")
    );

    assert!(err(&json!({"model": 3}), &cfg).contains("`model` is not an object"));
    let unigram = json!({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}});
    assert!(matches!(
        meta(&unigram, None, &cfg),
        Err(QuantError::Unsupported(_))
    ));
    let with_vocab = |base: Value, vocab: Value| {
        let mut t = base;
        t["model"]["vocab"] = vocab;
        t
    };
    for base in [spm_like(), byte_level()] {
        assert!(err(&with_vocab(base.clone(), json!([1, 2])), &cfg).contains("model.vocab"));
        assert!(err(&with_vocab(base.clone(), json!({"a": "0"})), &cfg).contains("id"));
        assert!(err(&with_vocab(base.clone(), json!({"a": -1})), &cfg).contains("id"));
        assert!(err(&with_vocab(base.clone(), json!({"a": 1u64 << 40})), &cfg).contains("below"));
        assert!(
            err(&with_vocab(base.clone(), json!({"a": 0, "b": 0})), &cfg).contains("two tokens")
        );
        let long = "x".repeat(70_000);
        assert!(err(&with_vocab(base.clone(), json!({long: 0})), &cfg).contains("bytes"));
        let mut t = base.clone();
        t["added_tokens"] = json!([{"id": 1}]);
        assert!(err(&t, &cfg).contains("content"));
        t["added_tokens"] = json!({"a": 1});
        assert!(err(&t, &cfg).contains("not a list"));
    }
    // llama path: a hole in the ids, an added token past the next free id.
    let hole = with_vocab(spm_like(), json!({"<unk>": 0, "<s>": 1, "a": 5}));
    assert!(err(&hole, &cfg).contains("no token has id 3"));
    let mut gap = spm_like();
    gap["added_tokens"][4]["id"] = json!(12);
    assert!(err(&gap, &cfg).contains("next free id"));
    // gpt2 path: bad merges, an id past config.vocab_size, an absurd vocab_size.
    let mut t = byte_level();
    let nine = json!({"vocab_size": 9});
    t["model"]["merges"] = json!([["a", "b", "c"]]);
    assert!(err(&t, &nine).contains("pair"));
    t["model"]["merges"] = json!([3]);
    assert!(err(&t, &nine).contains("merges"));
    assert!(err(&byte_level(), &json!({"vocab_size": 4})).contains("not below vocab_size 4"));
    assert!(err(&byte_level(), &json!({"vocab_size": 1u64 << 40})).contains("vocab_size"));
    // A negative special id is refused, as gguf-py does.
    let e = meta(
        &byte_level(),
        None,
        &json!({"vocab_size": 9, "bos_token_id": -1}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("bos"), "{e}");
    // A chat template beyond the GGUF string limit.
    let tc = json!({"chat_template": "x".repeat((1 << 20) + 1)});
    let e = meta(&byte_level(), Some(&tc), &nine).unwrap_err();
    assert!(e.to_string().contains("chat template"), "{e}");
}

#[test]
fn the_writer_refuses_arrays_gguf_cannot_hold() {
    for (v, why) in [
        (MetaValue::Array(vec![]), "empty"),
        (
            MetaValue::Array(vec![MetaValue::I32(1), MetaValue::F32(1.0)]),
            "different types",
        ),
        (
            MetaValue::Array(vec![MetaValue::Array(vec![MetaValue::I32(1)])]),
            "nested",
        ),
    ] {
        let e = GgufWriter::start(Vec::new(), &[("k".into(), v)], &[]).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[test]
fn to_gguf_writes_the_tokenizer_arrays_that_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tiny-llama");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let dir = tmp.path();
    std::fs::write(dir.join("tokenizer.json"), byte_level().to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({"bos_token": "<|begin_of_text|>", "add_bos_token": true}).to_string(),
    )
    .unwrap();
    let model = ModelDir::open(dir, Hashing::HeadersOnly).unwrap();
    let out = dir.join("m.gguf");
    to_gguf(&model, GgmlType::Q8_0, &out, &Options::default()).unwrap();
    let g = read_gguf(File::open(&out).unwrap()).unwrap();
    let tokens = g
        .get("tokenizer.ggml.tokens")
        .unwrap()
        .as_strings()
        .unwrap();
    assert_eq!(tokens.len(), 256, "padded to config.json's vocab_size");
    assert_eq!(&tokens[..5], ["!", "a", "Ġa", "aa", "<|begin_of_text|>"]);
    assert_eq!(tokens[255], "[PAD255]");
    let types = g
        .get("tokenizer.ggml.token_type")
        .unwrap()
        .as_i32s()
        .unwrap();
    assert_eq!(&types[..8], [1, 1, 1, 1, 3, 3, 5, 4]);
    assert_eq!(
        g.get("tokenizer.ggml.merges")
            .unwrap()
            .as_strings()
            .unwrap(),
        ["Ġ a", "a a", "a\u{120}b c"]
    );
    assert_eq!(
        g.get("tokenizer.ggml.bos_token_id"),
        Some(&MetaValue::U32(4))
    );
    assert_eq!(
        g.get("tokenizer.ggml.add_bos_token")
            .and_then(MetaValue::as_bool),
        Some(true)
    );
    assert_eq!(
        g.get("tokenizer.ggml.model").and_then(MetaValue::as_str),
        Some("gpt2")
    );

    // A broken tokenizer.json fails the conversion and leaves nothing behind.
    std::fs::write(dir.join("tokenizer.json"), b"{\"model\": []}").unwrap();
    let model = ModelDir::open(dir, Hashing::HeadersOnly).unwrap();
    let out = dir.join("bad.gguf");
    let e = to_gguf(&model, GgmlType::Q8_0, &out, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
    assert!(!out.exists() && !dir.join("bad.gguf.partial").exists());
}
