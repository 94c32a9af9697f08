//! GGUF tokenizer metadata (`tokenizer.ggml.*`) from a Hugging Face `tokenizer.json`, as
//! llama.cpp's convert_hf_to_gguf.py writes it for the Llama family (`LlamaModel.set_vocab`):
//!
//! * a BPE model with `byte_fallback` and a `Sequence` decoder (Llama 2, Mistral: SentencePiece
//!   converted to tokenizer.json) → `gguf.LlamaHfVocab`: model `llama`, pre `default`, tokens by
//!   id then the added tokens above the base vocabulary, every score −1000, types BYTE for
//!   `<0xXX>`, CONTROL for special tokens, NORMAL otherwise, USER_DEFINED for added non-special
//!   tokens; no merges;
//! * any other BPE (byte-level, Llama 3) → `_set_vocab_gpt2`: model `gpt2`, tokens for ids
//!   `0..config.vocab_size` (`[PAD{i}]`, UNUSED, where no token has the id), types CONTROL for
//!   added special (or special-looking) tokens, USER_DEFINED for other added tokens, NORMAL
//!   otherwise; merges; pre `llama-bpe` when the pre-tokenizer is Llama 3's split, else
//!   `default` (llama.cpp hashes a tokenisation instead, which needs the tokenizer itself);
//! * then `gguf.SpecialVocab`: bos/eos/unk/sep/pad/mask ids from tokenizer_config.json's
//!   `*_token` (looked up among `added_tokens`), then config.json's `*_token_id`;
//!   `add_bos_token` / `add_eos_token`; `chat_template` when it is a string.
//!
//! Where the Python reads the tokenizer through transformers we read tokenizer.json: special
//! ids are the added tokens marked `special`. Every size is bounded and every shape checked:
//! a hostile file is a `QuantError`, never a panic.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::QuantError;
use super::gguf::MetaValue;

/// The largest tokenizer.json accepted (Llama 3's is 9 MB; Gemma's 34 MB).
pub const MAX_TOKENIZER_JSON: usize = 64 << 20;
/// The most tokens (and the highest id + 1, and the most merges).
pub const MAX_VOCAB: usize = 1 << 21;
/// The longest token or merge, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1 << 16;
/// The longest chat template (the GGUF reader's string limit).
pub const MAX_CHAT_TEMPLATE: usize = 1 << 20;

/// gguf-py `TokenType`.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// The Llama 3 pre-tokenizer split (`tokenizer.ggml.pre` = `llama-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn bad(what: impl std::fmt::Display) -> QuantError {
    QuantError::Invalid(format!("tokenizer.json: {what}"))
}

struct Added {
    id: usize,
    content: String,
    special: bool,
}

fn id_of(v: &Value, what: &str) -> Result<usize, QuantError> {
    v.as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .filter(|&i| i < MAX_VOCAB)
        .ok_or_else(|| {
            bad(format!(
                "{what}: id {v} is not an integer below {MAX_VOCAB}"
            ))
        })
}

fn token_text(s: &str, what: &str) -> Result<String, QuantError> {
    if s.len() > MAX_TOKEN_BYTES {
        return Err(bad(format!("{what}: a token of {} bytes", s.len())));
    }
    Ok(s.to_owned())
}

fn vocab(model: &Map<String, Value>) -> Result<BTreeMap<usize, String>, QuantError> {
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("`model.vocab` is not an object"))?;
    if vocab.len() > MAX_VOCAB {
        return Err(bad(format!("{} tokens (at most {MAX_VOCAB})", vocab.len())));
    }
    let mut by_id = BTreeMap::new();
    for (tok, id) in vocab {
        let id = id_of(id, "model.vocab")?;
        if by_id.insert(id, token_text(tok, "model.vocab")?).is_some() {
            return Err(bad(format!("two tokens have id {id}")));
        }
    }
    Ok(by_id)
}

fn added_tokens(tj: &Value) -> Result<Vec<Added>, QuantError> {
    let list = match tj.get("added_tokens") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("`added_tokens` is not a list")),
    };
    if list.len() > MAX_VOCAB {
        return Err(bad(format!("{} added tokens", list.len())));
    }
    list.iter()
        .map(|t| {
            let content = t["content"]
                .as_str()
                .ok_or_else(|| bad("an added token has no string `content`"))?;
            Ok(Added {
                id: id_of(&t["id"], "added_tokens")?,
                content: token_text(content, "added_tokens")?,
                special: t["special"].as_bool().unwrap_or(false),
            })
        })
        .collect()
}

fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && b[5] == b'>'
        && b[3..5].iter().all(u8::is_ascii_hexdigit)
}

/// convert_hf_to_gguf.py `does_token_look_special`.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// The vocabulary arrays: tokens, scores (llama only), token types.
struct Vocab {
    model: &'static str,
    pre: &'static str,
    tokens: Vec<String>,
    scores: Option<Vec<f32>>,
    types: Vec<i32>,
    merges: Vec<String>,
}

fn llama_vocab(base: BTreeMap<usize, String>, added: &[Added]) -> Result<Vocab, QuantError> {
    let n_base = base.len();
    let specials: BTreeMap<usize, &str> = added
        .iter()
        .filter(|a| a.special)
        .map(|a| (a.id, a.content.as_str()))
        .collect();
    let mut by_id = base;
    for a in added.iter().filter(|a| a.id < n_base) {
        by_id.insert(a.id, a.content.clone());
    }
    let (mut tokens, mut types) = (Vec::with_capacity(n_base), Vec::with_capacity(n_base));
    for (i, (id, tok)) in by_id.into_iter().enumerate() {
        if id != i {
            return Err(bad(format!("no token has id {i}")));
        }
        types.push(if is_byte_token(&tok) {
            token_type::BYTE
        } else if specials.contains_key(&id) {
            token_type::CONTROL
        } else {
            token_type::NORMAL
        });
        tokens.push(tok);
    }
    let mut above: Vec<&Added> = added.iter().filter(|a| a.id >= n_base).collect();
    above.sort_by_key(|a| a.id);
    for a in above {
        if a.id != tokens.len() {
            return Err(bad(format!(
                "added token `{}` has id {} but the next free id is {}",
                a.content,
                a.id,
                tokens.len()
            )));
        }
        types.push(if a.special {
            token_type::CONTROL
        } else {
            token_type::USER_DEFINED
        });
        tokens.push(a.content.clone());
    }
    Ok(Vocab {
        model: "llama",
        pre: "default",
        scores: Some(vec![-1000.0; tokens.len()]),
        tokens,
        types,
        merges: Vec::new(),
    })
}

fn merges(model: &Map<String, Value>) -> Result<Vec<String>, QuantError> {
    let list = match model.get("merges") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("`model.merges` is not a list")),
    };
    if list.len() > MAX_VOCAB {
        return Err(bad(format!("{} merges", list.len())));
    }
    let space = |s: &str| s.replace(' ', "\u{120}");
    list.iter()
        .map(|m| {
            let text = match m {
                Value::String(s) => s.clone(),
                Value::Array(p) => match p.as_slice() {
                    [Value::String(a), Value::String(b)] => format!("{} {}", space(a), space(b)),
                    _ => return Err(bad("a merge is not a pair of strings")),
                },
                _ => return Err(bad("unknown merges format")),
            };
            token_text(&text, "model.merges")
        })
        .collect()
}

fn pre_tokenizer(tj: &Value) -> &'static str {
    let pre = &tj["pre_tokenizer"];
    let parts = pre["pretokenizers"].as_array().map(Vec::as_slice);
    match (pre["type"].as_str(), parts) {
        (Some("Sequence"), Some([split, byte_level]))
            if split["type"] == "Split"
                && split["pattern"]["Regex"] == LLAMA3_SPLIT
                && byte_level["type"] == "ByteLevel" =>
        {
            "llama-bpe"
        }
        _ => "default",
    }
}

fn gpt2_vocab(
    tj: &Value,
    model: &Map<String, Value>,
    base: BTreeMap<usize, String>,
    added: &[Added],
    config: &Value,
) -> Result<Vocab, QuantError> {
    let mut by_id: BTreeMap<usize, (String, Option<bool>)> =
        base.into_iter().map(|(i, t)| (i, (t, None))).collect();
    for a in added {
        by_id.insert(a.id, (a.content.clone(), Some(a.special)));
    }
    let n = match config.get("vocab_size") {
        None | Some(Value::Null) => by_id.len(),
        Some(v) => v
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v <= MAX_VOCAB)
            .ok_or_else(|| {
                QuantError::Invalid(format!("config.json: vocab_size {v} (at most {MAX_VOCAB})"))
            })?,
    };
    if let Some((&max, _)) = by_id.last_key_value()
        && max >= n
    {
        return Err(bad(format!("token id {max} is not below vocab_size {n}")));
    }
    let (mut tokens, mut types) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        match by_id.remove(&i) {
            None => {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
            }
            Some((tok, None)) => {
                tokens.push(tok);
                types.push(token_type::NORMAL);
            }
            Some((tok, Some(special))) => {
                if special || looks_special(&tok) {
                    tokens.push(tok);
                    types.push(token_type::CONTROL);
                } else {
                    tokens.push(tok.replace('\u{2581}', " "));
                    types.push(token_type::USER_DEFINED);
                }
            }
        }
    }
    Ok(Vocab {
        model: "gpt2",
        pre: pre_tokenizer(tj),
        tokens,
        scores: None,
        types,
        merges: merges(model)?,
    })
}

/// gguf-py `SpecialVocab.special_token_types` and the key each is written under (`cls` has
/// no writer method in gguf-py 0.17 and is skipped, as there).
const SPECIAL: [(&str, Option<&str>); 7] = [
    ("bos", Some("tokenizer.ggml.bos_token_id")),
    ("eos", Some("tokenizer.ggml.eos_token_id")),
    ("unk", Some("tokenizer.ggml.unknown_token_id")),
    ("sep", Some("tokenizer.ggml.seperator_token_id")),
    ("pad", Some("tokenizer.ggml.padding_token_id")),
    ("cls", None),
    ("mask", Some("tokenizer.ggml.mask_token_id")),
];

/// `SpecialVocab._set_special_token`: ints only, negative refused, out of range skipped,
/// first one wins.
fn set_special(
    ids: &mut Vec<(&'static str, u32)>,
    typ: &'static str,
    id: Option<&Value>,
    n_vocab: Option<usize>,
) -> Result<(), QuantError> {
    let Some(v) = id.filter(|v| v.is_i64() || v.is_u64()) else {
        return Ok(());
    };
    let id = v
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| QuantError::Invalid(format!("special token {typ}: id {v}")))?;
    if n_vocab.is_none_or(|n| (id as usize) < n) && !ids.iter().any(|(t, _)| *t == typ) {
        ids.push((typ, id));
    }
    Ok(())
}

fn special_metadata(
    added: &[Added],
    tokenizer_config: Option<&Value>,
    config: &Value,
    n_vocab: Option<usize>,
    meta: &mut Vec<(String, MetaValue)>,
) -> Result<(), QuantError> {
    let mut ids: Vec<(&'static str, u32)> = Vec::new();
    let mut add_flags: Vec<(&'static str, bool)> = Vec::new();
    let mut chat_template = None;
    if let Some(tc) = tokenizer_config {
        if let Some(t) = tc.get("chat_template").and_then(Value::as_str) {
            if t.len() > MAX_CHAT_TEMPLATE {
                return Err(QuantError::Invalid(format!(
                    "tokenizer_config.json: a chat template of {} bytes",
                    t.len()
                )));
            }
            chat_template = Some(t.to_owned());
        }
        for (typ, _) in SPECIAL {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Value::as_bool) {
                add_flags.push((typ, b));
            }
            let entry = &tc[format!("{typ}_token")];
            let Some(content) = entry.as_str().or_else(|| entry["content"].as_str()) else {
                continue;
            };
            let id = added
                .iter()
                .find(|a| a.content == content)
                .map(|a| Value::from(a.id));
            set_special(&mut ids, typ, id.as_ref(), n_vocab)?;
        }
    }
    for (typ, _) in SPECIAL {
        set_special(
            &mut ids,
            typ,
            config.get(format!("{typ}_token_id")),
            n_vocab,
        )?;
    }
    for (typ, id) in ids {
        if let Some(Some(key)) = SPECIAL.iter().find(|(t, _)| *t == typ).map(|(_, k)| k) {
            meta.push(((*key).to_owned(), MetaValue::U32(id)));
        }
    }
    for (typ, b) in add_flags {
        if typ == "bos" || typ == "eos" {
            meta.push((
                format!("tokenizer.ggml.add_{typ}_token"),
                MetaValue::Bool(b),
            ));
        }
    }
    if let Some(t) = chat_template {
        meta.push(("tokenizer.chat_template".into(), MetaValue::Str(t)));
    }
    Ok(())
}

/// The `tokenizer.*` GGUF keys for a Llama-family model, in convert_hf_to_gguf.py's order.
pub fn tokenizer_metadata(
    tokenizer_json: &[u8],
    tokenizer_config: Option<&Value>,
    config: &Value,
) -> Result<Vec<(String, MetaValue)>, QuantError> {
    if tokenizer_json.len() > MAX_TOKENIZER_JSON {
        return Err(bad(format!(
            "{} bytes (at most {MAX_TOKENIZER_JSON})",
            tokenizer_json.len()
        )));
    }
    let tj: Value = serde_json::from_slice(tokenizer_json).map_err(bad)?;
    let model = tj
        .get("model")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("`model` is not an object"))?;
    let kind = model.get("type").and_then(Value::as_str);
    if kind != Some("BPE") {
        return Err(QuantError::Unsupported(format!(
            "tokenizer.json: model type {} (GGUF tokenizer metadata supports BPE)",
            kind.unwrap_or("missing")
        )));
    }
    let flag = |k: &str, default: bool| model.get(k).and_then(Value::as_bool).unwrap_or(default);
    let is_llama3 = flag("ignore_merges", false) && !flag("byte_fallback", true);
    let spm_like =
        !is_llama3 && flag("byte_fallback", false) && tj["decoder"]["type"] == "Sequence";
    let base = vocab(model)?;
    let added = added_tokens(&tj)?;
    let v = if spm_like {
        llama_vocab(base, &added)?
    } else {
        gpt2_vocab(&tj, model, base, &added, config)?
    };
    if v.tokens.is_empty() {
        return Err(bad("no tokens"));
    }
    let strings =
        |items: Vec<String>| MetaValue::Array(items.into_iter().map(MetaValue::Str).collect());
    let n_vocab = v.tokens.len();
    let mut meta = vec![
        (
            "tokenizer.ggml.model".to_owned(),
            MetaValue::Str(v.model.into()),
        ),
        (
            "tokenizer.ggml.pre".to_owned(),
            MetaValue::Str(v.pre.into()),
        ),
        ("tokenizer.ggml.tokens".to_owned(), strings(v.tokens)),
    ];
    if let Some(scores) = v.scores {
        meta.push((
            "tokenizer.ggml.scores".into(),
            MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect()),
        ));
    }
    meta.push((
        "tokenizer.ggml.token_type".into(),
        MetaValue::Array(v.types.into_iter().map(MetaValue::I32).collect()),
    ));
    if !v.merges.is_empty() {
        meta.push(("tokenizer.ggml.merges".into(), strings(v.merges)));
    }
    // The llama path passes n_vocab to SpecialVocab; the gpt2 path does not.
    let n_vocab = (v.model == "llama").then_some(n_vocab);
    special_metadata(&added, tokenizer_config, config, n_vocab, &mut meta)?;
    Ok(meta)
}
