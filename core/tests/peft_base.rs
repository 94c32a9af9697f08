//! Adapters checked against a base model's tensor headers.

mod peft_support;

/// Named `peft` so that `cargo test -p adapter-core peft` selects these tests.
mod peft {

    use crate::peft_support::{Adapter, P, base, codes, llama_base};
    use adapter_core::peft::{AdapterReport, build_report};
    use adapter_core::safetensors::Dtype;
    use serde_json::json;

    fn against(
        a: &Adapter,
        b: &std::collections::BTreeMap<String, adapter_core::safetensors::TensorInfo>,
    ) -> AdapterReport {
        build_report(&a.parsed_config(), &a.infos(), Some(b)).unwrap()
    }

    #[test]
    fn a_matching_adapter_passes_and_notes_the_base_dtype() {
        let a = Adapter::new(json!({"target_modules": ["q_proj", "up_proj"]}))
            .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
            .linear("model.layers.1.mlp.up_proj", 8, 64, 128);
        let r = against(&a, &llama_base(4));
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
        assert_eq!(r.modules[1].base_dtype, Some(Dtype::BF16));
        assert_eq!(r.modules[1].base_shape, Some(vec![128, 64]));
        assert!(!r.modules[1].fan_in_fan_out);
    }

    #[test]
    fn a_wrong_shape_is_an_error_naming_both_shapes() {
        // in/out swapped for up_proj: adapter implies [64, 128], base has [128, 64].
        let a = Adapter::new(json!({"target_modules": ["up_proj"]})).linear(
            "model.layers.0.mlp.up_proj",
            8,
            64,
            96,
        );
        let r = against(&a, &llama_base(2));
        assert_eq!(codes(&r.findings.errors), ["base_shape_mismatch"]);
        let msg = &r.findings.errors[0].message;
        assert!(
            msg.contains("[128, 64]") && msg.contains("[96, 64]"),
            "{msg}"
        );
    }

    #[test]
    fn a_layer_beyond_the_base_gets_its_own_error() {
        let a = Adapter::new(json!({"target_modules": ["q_proj"]}))
            .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
            .linear("model.layers.40.self_attn.q_proj", 8, 64, 64);
        let r = against(&a, &llama_base(32));
        assert_eq!(codes(&r.findings.errors), ["layer_out_of_range"]);
        let msg = &r.findings.errors[0].message;
        assert!(
        msg.contains("layer 40 does not exist in the base: it has layers 0–31; PEFT would silently drop these weights"),
        "{msg}"
    );
        // A module the base lacks altogether is a different error.
        let b = Adapter::new(json!({"target_modules": ["gate_proj"]})).linear(
            "model.layers.0.mlp.gate_proj",
            8,
            64,
            128,
        );
        assert_eq!(
            codes(&against(&b, &llama_base(2)).findings.errors),
            ["base_tensor_missing"]
        );
    }

    #[test]
    fn gpt2_conv1d_is_stored_in_out_and_checked_with_fan_in_fan_out() {
        // GPT-2 checkpoints store `h.0.attn.c_attn.weight` as [in=64, out=192] (Conv1D); PEFT's
        // module names carry the `transformer.` prefix.
        let gpt2 = base(&[
            ("wte.weight", &[100, 64]),
            ("h.0.attn.c_attn.weight", &[64, 192]),
            ("h.0.attn.c_proj.weight", &[64, 64]),
            ("h.0.mlp.c_fc.weight", &[64, 256]),
            ("h.1.attn.c_attn.weight", &[64, 192]),
        ]);
        let a = |fifo: bool| {
            Adapter::new(json!({"fan_in_fan_out": fifo, "target_modules": ["c_attn", "c_fc"]}))
                .linear("transformer.h.0.attn.c_attn", 8, 64, 192)
                .linear("transformer.h.0.mlp.c_fc", 8, 64, 256)
        };
        let r = against(&a(true), &gpt2);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
        assert_eq!(r.modules[0].base_tensor, "h.0.attn.c_attn.weight");
        assert!(r.modules.iter().all(|m| m.fan_in_fan_out));

        // PEFT forces fan_in_fan_out for Conv1D; the flag disagreeing with the layout is a warning.
        let r = against(&a(false), &gpt2);
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(
            codes(&r.findings.warnings),
            ["fan_in_fan_out_mismatch", "fan_in_fan_out_mismatch"]
        );
        assert!(r.modules.iter().all(|m| m.fan_in_fan_out));

        // A shape that fits neither layout is an error.
        let wrong = Adapter::new(json!({"fan_in_fan_out": true, "target_modules": ["c_attn"]}))
            .linear("transformer.h.1.attn.c_attn", 8, 64, 128);
        let r = against(&wrong, &gpt2);
        assert_eq!(codes(&r.findings.errors), ["base_shape_mismatch"]);
        assert!(
            r.findings.errors[0].message.contains("[64, 128]"),
            "{}",
            r.findings.errors[0].message
        );

        // Layer 5 of a 2-layer GPT-2.
        let deep = Adapter::new(json!({"fan_in_fan_out": true, "target_modules": ["c_attn"]}))
            .linear("transformer.h.5.attn.c_attn", 8, 64, 192);
        let r = against(&deep, &gpt2);
        assert_eq!(codes(&r.findings.errors), ["layer_out_of_range"]);
        assert!(r.findings.errors[0].message.contains("layers 0–1"));
    }

    #[test]
    fn embeddings_are_num_embeddings_by_dim() {
        let e = "model.embed_tokens";
        let ok = Adapter::new(json!({"target_modules": ["embed_tokens"]}))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[8, 100])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        let r = against(&ok, &llama_base(1));
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        let wrong_vocab = Adapter::new(json!({"target_modules": ["embed_tokens"]}))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[8, 120])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        let r = against(&wrong_vocab, &llama_base(1));
        assert_eq!(codes(&r.findings.errors), ["base_shape_mismatch"]);
    }

    #[test]
    fn all_linear_never_targets_the_output_layer() {
        let a = Adapter::new(json!({"target_modules": "all-linear"}))
            .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
            .linear("lm_head", 8, 64, 100);
        // Without a base every 2-D module is accepted.
        let r = build_report(&a.parsed_config(), &a.infos(), None).unwrap();
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        let r = against(&a, &llama_base(1));
        assert_eq!(codes(&r.findings.errors), ["all_linear_output_layer"]);
        assert_eq!(r.findings.errors[0].subject.as_deref(), Some("lm_head"));
    }

    #[test]
    fn modules_to_save_must_have_the_base_shape() {
        let a = Adapter::new(
            json!({"target_modules": ["q_proj"], "modules_to_save": ["lm_head", "embed_tokens"]}),
        )
        .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
        .tensor(&format!("{P}lm_head.weight"), &[128, 64])
        .tensor(&format!("{P}model.embed_tokens.weight"), &[100, 64]);
        let r = against(&a, &llama_base(1));
        assert_eq!(codes(&r.findings.errors), ["saved_shape_mismatch"]);
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("base_model.model.lm_head.weight")
        );
    }

    #[test]
    fn dora_magnitude_follows_the_out_features_of_the_base() {
        let q = "model.layers.0.self_attn.q_proj";
        let a = Adapter::new(
            json!({"use_dora": true, "use_rslora": true, "target_modules": ["q_proj"]}),
        )
        .linear(q, 8, 64, 64)
        .tensor(&format!("{P}{q}.lora_magnitude_vector"), &[64]);
        let r = against(&a, &llama_base(1));
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(r.variant, "rslora+dora");
    }
}
