//! Model directories: single file and sharded, digests, fingerprints, hostile indexes.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use adapter_core::digest::{Digest, sha256_file};
use adapter_core::model::{Hashing, ModelDir, ModelError, content_digest, shape_fingerprint};
use adapter_core::safetensors::Dtype;
use safetensors::tensor::TensorView;

fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n * 2).map(|i| (i % 251) as u8).collect();
            ((*name).to_owned(), bytes, shape.clone())
        })
        .collect();
    let views: HashMap<String, TensorView<'_>> = data
        .iter()
        .map(|(name, bytes, shape)| {
            (
                name.clone(),
                TensorView::new(safetensors::Dtype::BF16, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

const TENSORS: [(&str, [usize; 2]); 4] = [
    ("model.embed_tokens.weight", [32, 8]),
    ("model.layers.0.self_attn.q_proj.weight", [8, 8]),
    ("model.layers.0.self_attn.k_proj.weight", [4, 8]),
    ("lm_head.weight", [32, 8]),
];

fn single(dir: &Path) {
    let t: Vec<_> = TENSORS.iter().map(|(n, s)| (*n, s.to_vec())).collect();
    write_safetensors(&dir.join("model.safetensors"), &t);
    fs::write(
        dir.join("config.json"),
        r#"{"model_type":"llama","num_hidden_layers":1}"#,
    )
    .unwrap();
}

fn sharded(dir: &Path) {
    let t: Vec<_> = TENSORS.iter().map(|(n, s)| (*n, s.to_vec())).collect();
    write_safetensors(&dir.join("model-00001-of-00002.safetensors"), &t[..2]);
    write_safetensors(&dir.join("model-00002-of-00002.safetensors"), &t[2..]);
    let map: serde_json::Map<String, serde_json::Value> = TENSORS
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            (
                (*n).to_owned(),
                format!("model-0000{}-of-00002.safetensors", i / 2 + 1).into(),
            )
        })
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 1}, "weight_map": map});
    fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn single_file_model_has_digest_and_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    single(dir.path());
    let m = ModelDir::open(dir.path(), Hashing::Full).unwrap();
    assert_eq!(m.tensors.len(), 4);
    assert_eq!(m.parameters(), 32 * 8 * 2 + 64 + 32);
    assert_eq!(m.dtypes().get(&Dtype::BF16), Some(&4));
    assert_eq!(m.config.as_ref().unwrap()["model_type"], "llama");
    let (file_digest, size) = sha256_file(&dir.path().join("model.safetensors")).unwrap();
    assert_eq!(m.files[0].size, size);
    assert_eq!(
        m.content_digest(),
        Some(content_digest(&[("model.safetensors", size, file_digest)]))
    );
    // Headers-only: same fingerprint, no content digest.
    let h = ModelDir::open(dir.path(), Hashing::HeadersOnly).unwrap();
    assert_eq!(h.content_digest(), None);
    assert_eq!(h.shape_fingerprint(), m.shape_fingerprint());
}

#[test]
fn sharding_changes_content_digest_but_not_fingerprint() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    single(a.path());
    sharded(b.path());
    let ma = ModelDir::open(a.path(), Hashing::Full).unwrap();
    let mb = ModelDir::open(b.path(), Hashing::Full).unwrap();
    assert_eq!(mb.files.len(), 2);
    assert_eq!(
        mb.tensors["lm_head.weight"].file,
        "model-00002-of-00002.safetensors"
    );
    assert_eq!(ma.shape_fingerprint(), mb.shape_fingerprint());
    assert_ne!(ma.content_digest(), mb.content_digest());
}

#[test]
fn fingerprint_sees_dtype_shape_and_name_changes_only() {
    let base = [("a", Dtype::BF16, vec![2u64, 3]), ("b", Dtype::F32, vec![])];
    let fp = |t: &[(&str, Dtype, Vec<u64>)]| {
        shape_fingerprint(t.iter().map(|(n, d, s)| (*n, *d, s.as_slice())))
    };
    let reference = fp(&base);
    let mut reversed = base.clone();
    reversed.reverse();
    assert_eq!(fp(&reversed), reference, "order of input must not matter");
    assert_ne!(
        fp(&[("a", Dtype::F16, vec![2, 3]), base[1].clone()]),
        reference
    );
    assert_ne!(
        fp(&[("a", Dtype::BF16, vec![3, 2]), base[1].clone()]),
        reference
    );
    assert_ne!(
        fp(&[("a2", Dtype::BF16, vec![2, 3]), base[1].clone()]),
        reference
    );
    assert_ne!(fp(&base[..1]), reference);
}

#[test]
fn content_digest_is_order_independent_and_sensitive() {
    let d1 = Digest::of_bytes(b"one");
    let d2 = Digest::of_bytes(b"two");
    let x = content_digest(&[("a.safetensors", 1, d1), ("b.safetensors", 2, d2)]);
    assert_eq!(
        x,
        content_digest(&[("b.safetensors", 2, d2), ("a.safetensors", 1, d1)])
    );
    assert_ne!(
        x,
        content_digest(&[("a.safetensors", 1, d2), ("b.safetensors", 2, d1)])
    );
    assert_ne!(
        x,
        content_digest(&[("a.safetensors", 9, d1), ("b.safetensors", 2, d2)])
    );
}

#[test]
fn index_pointing_outside_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    for bad in [
        "../model.safetensors",
        "sub/model.safetensors",
        "model.bin",
        ".safetensors",
    ] {
        let index = serde_json::json!({"weight_map": {"lm_head.weight": bad}});
        fs::write(
            dir.path().join("model.safetensors.index.json"),
            index.to_string(),
        )
        .unwrap();
        let err = ModelDir::open(dir.path(), Hashing::HeadersOnly).unwrap_err();
        assert!(matches!(err, ModelError::BadIndex(_)), "{bad}: {err}");
    }
}

#[test]
fn index_that_disagrees_with_the_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    let path = dir.path().join("model.safetensors.index.json");
    let text = fs::read_to_string(&path).unwrap();
    // lm_head claimed by the wrong shard.
    let wrong = text.replacen(
        r#""lm_head.weight":"model-00002-of-00002.safetensors""#,
        r#""lm_head.weight":"model-00001-of-00002.safetensors""#,
        1,
    );
    assert_ne!(wrong, text);
    fs::write(&path, &wrong).unwrap();
    assert!(matches!(
        ModelDir::open(dir.path(), Hashing::HeadersOnly),
        Err(ModelError::IndexMismatch { .. })
    ));
    // A tensor missing from the index.
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["weight_map"]
        .as_object_mut()
        .unwrap()
        .remove("model.embed_tokens.weight");
    fs::write(&path, v.to_string()).unwrap();
    assert!(matches!(
        ModelDir::open(dir.path(), Hashing::HeadersOnly),
        Err(ModelError::NotInIndex { .. })
    ));
    // Duplicate keys in the index.
    fs::write(
        &path,
        r#"{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}"#,
    )
    .unwrap();
    assert!(
        matches!(ModelDir::open(dir.path(), Hashing::HeadersOnly), Err(ModelError::BadIndex(m)) if m.contains("duplicate"))
    );
}

#[test]
fn tensor_in_two_shards_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_safetensors(&dir.path().join("a.safetensors"), &[("x", vec![2])]);
    write_safetensors(&dir.path().join("b.safetensors"), &[("x", vec![2])]);
    fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"weight_map":{"x":"a.safetensors","y":"b.safetensors"}}"#,
    )
    .unwrap();
    assert!(matches!(
        ModelDir::open(dir.path(), Hashing::HeadersOnly),
        Err(ModelError::DuplicateTensor { .. })
    ));
}

#[test]
fn missing_weights_and_pickles_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = ModelDir::open(dir.path(), Hashing::HeadersOnly).unwrap_err();
    assert!(matches!(err, ModelError::NoWeights(..)));
    fs::write(dir.path().join("pytorch_model.bin"), b"pickle").unwrap();
    let err = ModelDir::open(dir.path(), Hashing::HeadersOnly).unwrap_err();
    assert!(err.to_string().contains("pickle"), "{err}");
}

#[test]
fn bad_config_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    single(dir.path());
    fs::write(dir.path().join("config.json"), "[1]").unwrap();
    assert!(matches!(
        ModelDir::open(dir.path(), Hashing::HeadersOnly),
        Err(ModelError::BadConfig(_))
    ));
    fs::write(dir.path().join("config.json"), r#"{"a":1,"a":2}"#).unwrap();
    assert!(matches!(
        ModelDir::open(dir.path(), Hashing::HeadersOnly),
        Err(ModelError::BadConfig(_))
    ));
}

#[test]
fn what_a_set_of_files_is() {
    use adapter_core::manifest::Kind;
    let of = |files: &[&str]| adapter_core::model::kind_of(|f| files.contains(&f));
    assert_eq!(
        of(&["adapter_config.json", "config.json"]),
        Some(Kind::Adapter)
    );
    assert_eq!(of(&["model.safetensors"]), Some(Kind::Model));
    assert_eq!(
        of(&["model.safetensors.index.json", "README.md"]),
        Some(Kind::Model)
    );
    assert_eq!(of(&["README.md", "adapter_model.safetensors"]), None);
}

#[test]
fn pickle_checkpoints_by_extension() {
    for p in [
        "adapter_model.bin",
        "x/y/optimizer.PT",
        "a.ckpt",
        "w.pickle",
        "m.pkl",
        "m.pth",
    ] {
        assert!(adapter_core::model::is_pickle(p), "{p}");
    }
    for p in [
        "adapter_model.safetensors",
        "bin",
        "x.bin/README.md",
        "tokenizer.json",
        "a.binary",
    ] {
        assert!(!adapter_core::model::is_pickle(p), "{p}");
    }
}
