//! Header-only checks of adapters: PEFT's targeting, rank/alpha patterns and tensor shapes.

mod peft_support;

/// Named `peft` so that `cargo test -p adapter-core peft` selects these tests.
mod peft {

    use crate::peft_support::{Adapter, P, codes};
    use adapter_core::peft::{AdapterReport, ModuleKind, build_report};
    use adapter_core::safetensors::Dtype;
    use serde_json::json;

    fn report(a: &Adapter) -> AdapterReport {
        build_report(&a.parsed_config(), &a.infos(), None).unwrap()
    }

    fn attn(i: u64, p: &str) -> String {
        format!("model.layers.{i}.self_attn.{p}")
    }

    fn llama_adapter(config: serde_json::Value, r: u64) -> Adapter {
        let mut a = Adapter::new(config);
        for i in 0..2 {
            for p in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                a = a.linear(&attn(i, p), r, 64, 64);
            }
        }
        a
    }

    #[test]
    fn a_clean_llama_adapter_reports_its_modules() {
        let a = llama_adapter(
            json!({"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "meta/llama",
               "r": 8, "lora_alpha": 16, "target_modules": ["v_proj", "q_proj", "k_proj", "o_proj"]}),
            8,
        );
        let r = report(&a);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
        assert!(r.mergeable);
        assert_eq!(r.variant, "lora");
        assert_eq!(r.target_modules, ["k_proj", "o_proj", "q_proj", "v_proj"]);
        assert_eq!(r.layers, [0, 1]);
        assert_eq!(r.modules.len(), 8);
        assert_eq!(r.parameters, 8 * (8 * 64 + 64 * 8));
        assert_eq!(r.dtypes, [Dtype::F32]);
        let m = &r.modules[0];
        assert_eq!(m.module, "model.layers.0.self_attn.k_proj");
        assert_eq!(m.base_tensor, "model.layers.0.self_attn.k_proj.weight");
        assert_eq!(
            (m.kind, m.rank, m.alpha, m.scale),
            (ModuleKind::Linear, 8, 16.0, 2.0)
        );
        assert_eq!((m.in_features, m.out_features, m.layer), (64, 64, Some(0)));
        // JSON shape the CLI prints.
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "peft_type",
            "task_type",
            "base_model_name_or_path",
            "variant",
            "r",
            "lora_alpha",
            "use_rslora",
            "use_dora",
            "fan_in_fan_out",
            "target_modules",
            "target_modules_config",
            "modules",
            "modules_to_save",
            "layers",
            "dtypes",
            "parameters",
            "warnings",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["modules"][0]["kind"], "linear");
        assert_eq!(
            v["target_modules_config"],
            json!(["v_proj", "q_proj", "k_proj", "o_proj"])
        );
    }

    #[test]
    fn list_targets_use_the_dotted_suffix_rule() {
        let a = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear(&attn(0, "q_proj"), 8, 64, 64)
            .linear(&attn(0, "xq_proj"), 8, 64, 64);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["untargeted_module"]);
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("model.layers.0.self_attn.xq_proj")
        );
        assert!(!r.mergeable);
    }

    #[test]
    fn regex_targets_must_match_the_whole_name() {
        let a = Adapter::new(json!({"target_modules": r".*\.layers\.0\..*_proj"}))
            .linear(&attn(0, "q_proj"), 8, 64, 64)
            .linear(&attn(1, "q_proj"), 8, 64, 64);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["untargeted_module"]);
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("model.layers.1.self_attn.q_proj")
        );
    }

    #[test]
    fn all_linear_accepts_2d_modules_but_not_embeddings() {
        let a = Adapter::new(json!({"target_modules": "all-linear"}))
            .linear(&attn(0, "q_proj"), 8, 64, 64)
            .linear("model.layers.0.mlp.up_proj", 8, 64, 128)
            .tensor(
                &format!("{P}model.embed_tokens.lora_embedding_A"),
                &[8, 100],
            )
            .tensor(&format!("{P}model.embed_tokens.lora_embedding_B"), &[64, 8]);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["untargeted_module"]);
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("model.embed_tokens")
        );
        assert!(r.findings.errors[0].message.contains("all-linear"));
    }

    #[test]
    fn rank_and_alpha_patterns_first_key_wins_and_is_anchored() {
        // `layers.1.self_attn.q_proj` must not reach `layers.11`; `q_proj` comes second in file order.
        let config = json!({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"],
        "rank_pattern": {"layers.1.self_attn.q_proj": 4, "q_proj": 32},
        "alpha_pattern": {"layers.11.self_attn.q_proj": 8}});
        let a = Adapter::new(config.clone())
            .linear(&attn(1, "q_proj"), 4, 64, 64)
            .linear(&attn(11, "q_proj"), 32, 64, 64)
            .linear("model.q_proj", 32, 64, 64);
        let r = report(&a);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        let by = |n: &str| r.modules.iter().find(|m| m.module == n).unwrap().clone();
        let one = by(&attn(1, "q_proj"));
        assert_eq!((one.rank, one.alpha, one.scale), (4, 16.0, 4.0));
        let eleven = by(&attn(11, "q_proj"));
        assert_eq!((eleven.rank, eleven.alpha, eleven.scale), (32, 8.0, 0.25));
        // `(.*\.)?KEY$`: the key may be the whole name.
        assert_eq!(by("model.q_proj").rank, 32);

        // Layer 11 saved with the rank of the `layers.1` key: a rank mismatch, naming both shapes.
        let bad = Adapter::new(config).linear(&attn(11, "q_proj"), 4, 64, 64);
        let r = report(&bad);
        assert_eq!(
            codes(&r.findings.errors),
            ["rank_mismatch", "rank_mismatch"]
        );
        let msg = &r.findings.errors[0].message;
        assert!(
            msg.contains("[4, 64]") && msg.contains("[32, 64]") && msg.contains("`q_proj`"),
            "{msg}"
        );
    }

    #[test]
    fn rslora_scale_is_alpha_over_sqrt_r() {
        let a = Adapter::new(
            json!({"r": 64, "lora_alpha": 16, "use_rslora": true, "target_modules": ["q_proj"]}),
        )
        .linear(&attn(0, "q_proj"), 64, 64, 64);
        let r = report(&a);
        assert_eq!(r.variant, "rslora");
        assert_eq!(r.modules[0].scale, 2.0);
    }

    #[test]
    fn dora_magnitude_must_be_present_and_out_sized() {
        let cfg = json!({"r": 8, "use_dora": true, "target_modules": ["q_proj", "k_proj"]});
        let q = attn(0, "q_proj");
        let k = attn(0, "k_proj");
        let ok = Adapter::new(cfg.clone())
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_magnitude_vector"), &[32])
            .linear(&k, 8, 64, 16)
            .tensor(&format!("{P}{k}.lora_magnitude_vector.weight"), &[16]);
        let r = report(&ok);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(r.variant, "dora");
        assert!(r.modules.iter().all(|m| m.dora));

        let bad = Adapter::new(cfg)
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_magnitude_vector"), &[64])
            .linear(&k, 8, 64, 16);
        let r = report(&bad);
        assert_eq!(
            codes(&r.findings.errors),
            ["dora_magnitude_missing", "dora_magnitude_shape"]
        );
        assert!(r.findings.errors[1].message.contains("[64], expected [32]"));

        let unexpected = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_magnitude_vector"), &[32]);
        assert_eq!(
            codes(&report(&unexpected).findings.errors),
            ["dora_magnitude_unexpected"]
        );
    }

    #[test]
    fn embeddings_use_their_own_a_b_layout() {
        let e = "model.embed_tokens";
        let a = Adapter::new(json!({"r": 8, "target_modules": ["embed_tokens"]}))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[8, 100])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        let r = report(&a);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        let m = &r.modules[0];
        assert_eq!(
            (m.kind, m.in_features, m.out_features),
            (ModuleKind::Embedding, 100, 64)
        );
        assert_eq!(m.base_tensor, "model.embed_tokens.weight");

        let swapped = Adapter::new(json!({"r": 8, "target_modules": ["embed_tokens"]}))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[100, 8])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        assert_eq!(codes(&report(&swapped).findings.errors), ["rank_mismatch"]);
    }

    #[test]
    fn conv_modules_are_supported() {
        let c = "unet.down.0.conv";
        let a = Adapter::new(json!({"r": 4, "use_dora": true, "target_modules": ["conv"]}))
            .tensor(&format!("{P}{c}.lora_A.weight"), &[4, 16, 3, 3])
            .tensor(&format!("{P}{c}.lora_B.weight"), &[32, 4, 1, 1])
            .tensor(&format!("{P}{c}.lora_magnitude_vector"), &[1, 32, 1, 1]);
        let r = report(&a);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(
            (
                r.modules[0].kind,
                r.modules[0].in_features,
                r.modules[0].out_features
            ),
            (ModuleKind::Conv, 16, 32)
        );

        let bad = Adapter::new(json!({"r": 4, "target_modules": ["conv"]}))
            .tensor(&format!("{P}{c}.lora_A.weight"), &[4, 16, 3, 3])
            .tensor(&format!("{P}{c}.lora_B.weight"), &[32, 4, 3, 3]);
        assert_eq!(codes(&report(&bad).findings.errors), ["bad_shape"]);
    }

    #[test]
    fn modules_to_save_are_carried_under_base_names() {
        let a = Adapter::new(
            json!({"target_modules": ["q_proj"], "modules_to_save": ["lm_head", "norm"]}),
        )
        .linear(&attn(0, "q_proj"), 8, 64, 64)
        .tensor(&format!("{P}lm_head.weight"), &[100, 64]);
        let r = report(&a);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(r.modules_to_save.len(), 1);
        assert_eq!(r.modules_to_save[0].base_tensor, "lm_head.weight");
        assert_eq!(r.modules_to_save[0].shape, [100, 64]);
        assert_eq!(codes(&r.findings.warnings), ["modules_to_save_missing"]);
        assert_eq!(r.parameters, 8 * 64 * 2 + 6400);

        // SEQ_CLS saves the `score` head even when modules_to_save is empty.
        let cls = Adapter::new(json!({"task_type": "SEQ_CLS", "target_modules": ["q_proj"]}))
            .linear(&attn(0, "q_proj"), 8, 64, 64)
            .tensor(&format!("{P}score.weight"), &[2, 64]);
        let r = report(&cls);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(r.modules_to_save[0].base_tensor, "score.weight");

        // A LoRA module inside a modules_to_save module is never adapted by PEFT.
        let inside =
            Adapter::new(json!({"target_modules": ["dense"], "modules_to_save": ["classifier"]}))
                .linear("classifier.dense", 8, 64, 64);
        assert_eq!(
            codes(&report(&inside).findings.errors),
            ["untargeted_module"]
        );
    }

    #[test]
    fn lora_bias_only_with_the_flag() {
        let q = attn(0, "q_proj");
        let ok = Adapter::new(json!({"lora_bias": true, "target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_B.bias"), &[32]);
        let r = report(&ok);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert!(r.modules[0].lora_bias);

        let unexpected = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_B.bias"), &[32]);
        assert_eq!(
            codes(&report(&unexpected).findings.errors),
            ["lora_bias_unexpected"]
        );

        let missing = Adapter::new(json!({"lora_bias": true, "target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 32);
        assert_eq!(
            codes(&report(&missing).findings.errors),
            ["lora_bias_missing"]
        );

        let wrong = Adapter::new(json!({"lora_bias": true, "target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 32)
            .tensor(&format!("{P}{q}.lora_B.bias"), &[64]);
        assert_eq!(codes(&report(&wrong).findings.errors), ["lora_bias_shape"]);
    }

    #[test]
    fn trained_biases_follow_the_bias_setting() {
        let q = attn(0, "q_proj");
        let all = Adapter::new(json!({"bias": "all", "target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 64)
            .tensor(&format!("{P}model.layers.0.mlp.up_proj.bias"), &[128]);
        let r = report(&all);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(r.biases[0].base_tensor, "model.layers.0.mlp.up_proj.bias");

        let none = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear(&q, 8, 64, 64)
            .tensor(&format!("{P}{q}.bias"), &[64]);
        assert_eq!(
            codes(&report(&none).findings.errors),
            ["unrecognised_tensor"]
        );
    }

    #[test]
    fn layers_to_transform_limits_the_adapted_layers() {
        let a = Adapter::new(json!({"target_modules": ["q_proj"], "layers_to_transform": [0, 1], "layers_pattern": "layers"}))
        .linear(&attn(0, "q_proj"), 8, 64, 64)
        .linear(&attn(1, "q_proj"), 8, 64, 64)
        .linear(&attn(3, "q_proj"), 8, 64, 64);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["untargeted_module"]);
        assert!(
            r.findings.errors[0]
                .message
                .contains("layer 3 is not in layers_to_transform")
        );
        assert_eq!(r.layers, [0, 1, 3]);
    }

    #[test]
    fn exclude_modules_apply_like_targets() {
        let a = Adapter::new(
            json!({"target_modules": ["q_proj"], "exclude_modules": r".*layers\.1\..*"}),
        )
        .linear(&attn(0, "q_proj"), 8, 64, 64)
        .linear(&attn(1, "q_proj"), 8, 64, 64);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["untargeted_module"]);
        assert!(r.findings.errors[0].message.contains("exclude_modules"));
    }

    #[test]
    fn missing_halves_are_errors() {
        let q = attn(0, "q_proj");
        let a = Adapter::new(json!({"target_modules": ["q_proj", "k_proj"]}))
            .linear(&q, 8, 64, 64)
            .without(&format!("{P}{q}.lora_B.weight"))
            .linear(&attn(0, "k_proj"), 8, 64, 64)
            .without(&format!("{P}model.layers.0.self_attn.k_proj.lora_A.weight"));
        let r = report(&a);
        assert_eq!(
            codes(&r.findings.errors),
            ["lora_a_missing", "lora_b_missing"]
        );
        assert_eq!(r.findings.errors[1].subject.as_deref(), Some(q.as_str()));
    }

    #[test]
    fn unused_targets_warn() {
        let a = Adapter::new(json!({"target_modules": ["q_proj", "gate_proj"]})).linear(
            &attn(0, "q_proj"),
            8,
            64,
            64,
        );
        let r = report(&a);
        assert!(r.findings.errors.is_empty());
        assert_eq!(codes(&r.findings.warnings), ["unused_target"]);
        assert_eq!(r.findings.warnings[0].subject.as_deref(), Some("gate_proj"));
    }

    #[test]
    fn leftover_adapter_names_and_odd_suffixes_are_errors() {
        let a = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear(&attn(0, "q_proj"), 8, 64, 64)
            .tensor(
                &format!("{P}model.layers.1.self_attn.q_proj.lora_A.default.weight"),
                &[8, 64],
            )
            .tensor(
                &format!("{P}model.layers.1.self_attn.q_proj.lora_E"),
                &[8, 1],
            );
        let r = report(&a);
        assert_eq!(
            codes(&r.findings.errors),
            ["unrecognised_tensor", "unrecognised_tensor"]
        );
        assert!(r.findings.errors[0].message.contains("default"));
    }

    #[test]
    fn dtypes_float_and_mixed() {
        let q = attn(0, "q_proj");
        let a = Adapter::new(json!({"target_modules": ["q_proj", "k_proj"]}))
            .linear(&q, 8, 64, 64)
            .linear(&attn(0, "k_proj"), 8, 64, 64)
            .dtype(&format!("{P}{q}.lora_A.weight"), Dtype::I8)
            .dtype(
                &format!("{P}model.layers.0.self_attn.k_proj.lora_A.weight"),
                Dtype::BF16,
            );
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["non_float_dtype"]);
        assert_eq!(codes(&r.findings.warnings), ["mixed_dtypes"]);
        assert_eq!(r.dtypes, [Dtype::I8, Dtype::BF16, Dtype::F32]);
    }

    #[test]
    fn an_adapter_without_lora_tensors_is_an_error() {
        let a = Adapter::new(json!({"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}))
            .tensor(&format!("{P}lm_head.weight"), &[100, 64]);
        let r = report(&a);
        assert_eq!(codes(&r.findings.errors), ["no_lora_weights"]);
    }
}
