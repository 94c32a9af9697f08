//! The `validate` job's logic against real-shaped fixtures: verdicts, per-module checks and
//! the serving profile.

mod compat_support;
mod peft_support;

/// Named `compat` so that `cargo test -p adapter-core compat` selects these tests.
mod compat {
    use crate::compat_support::{
        gpt2, json, llama, llama_adapter, lora_config, notes, problems, run, run_recorded,
    };
    use crate::peft_support::{Adapter, P, codes};
    use adapter_core::api::BaseModelRef;
    use adapter_core::compat::Verdict;
    use adapter_core::digest::Digest;
    use adapter_core::peft::ModuleKind;
    use adapter_core::safetensors::Dtype;
    use serde_json::json;

    #[test]
    fn a_compatible_pair_passes_with_module_facts_and_serving_flags() {
        let base = llama(4);
        let a = llama_adapter(8, 4, &["q_proj", "v_proj"], 64);
        let r = run(&a, &base);
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
        assert_eq!(r.modules.len(), 8);
        let m = &r.modules[0];
        assert!(r.modules.iter().all(|m| m.ok));
        assert_eq!(m.module, "model.layers.0.self_attn.q_proj");
        assert_eq!(
            m.base_tensor.as_deref(),
            Some("model.layers.0.self_attn.q_proj.weight")
        );
        assert_eq!(
            (m.kind, m.in_features, m.out_features),
            (ModuleKind::Linear, 64, 64)
        );
        assert_eq!(
            (m.dtype, m.base_dtype),
            (Some(Dtype::F32), Some(Dtype::BF16))
        );
        assert_eq!(m.base_shape, Some(vec![64, 64]));
        assert_eq!(m.layer, Some(0));
        assert_eq!(r.base.hidden_size, Some(64));
        assert_eq!(r.base.vocab_size, Some(100));
        assert!(!r.base.tied_embeddings);

        let v = json(&r);
        assert_eq!(v["verdict"], "compatible");
        assert_eq!(v["errors"], json!([]));
        let vllm = &v["serving"]["stacks"]["vllm"];
        assert_eq!(vllm["loads"], true);
        assert_eq!(vllm["max_lora_rank"], 8);
        assert_eq!(vllm["flags"], json!(["--enable-lora", "--max-lora-rank 8"]));
        let lorax = &v["serving"]["stacks"]["lorax"];
        assert_eq!(lorax["loads"], true, "{lorax}");
        assert_eq!(lorax["architecture"], "llama");
        assert_eq!(lorax["padded_rank"], 8);
        assert_eq!(v["serving"]["stacks"]["llama.cpp"]["loads"], true);
    }

    #[test]
    fn hidden_size_mismatch_is_named_besides_each_shape() {
        // Trained on a model with hidden size 128 (a bigger sibling), validated on 64.
        let a = llama_adapter(8, 2, &["q_proj", "v_proj"], 128);
        let r = run(&a, &llama(2));
        assert_eq!(r.verdict, Verdict::Incompatible);
        let c = codes(&r.findings.errors);
        assert_eq!(c[0], "base_shape_mismatch");
        assert!(c.contains(&"hidden_size_mismatch"), "{c:?}");
        let hidden = r
            .findings
            .errors
            .iter()
            .find(|f| f.code == "hidden_size_mismatch")
            .unwrap();
        assert!(
            hidden.message.contains("hidden size 128")
                && hidden.message.contains("base has hidden size 64"),
            "{}",
            hidden.message
        );
        assert!(r.modules.iter().all(|m| !m.ok));
        // Shapes that agree never raise it.
        let ok = run(&llama_adapter(8, 2, &["q_proj"], 64), &llama(2));
        assert!(!codes(&ok.findings.errors).contains(&"hidden_size_mismatch"));
    }

    #[test]
    fn a_vision_tower_of_another_width_is_no_hidden_size_mismatch() {
        // A multimodal base: 3 vision layers 32 wide beside 2 text layers 64 wide. The
        // adapter fits both, so the majority width (32) must not be taken for the model's.
        let mut base = llama(2);
        let mut a = llama_adapter(8, 2, &["q_proj"], 64);
        for i in 0..3 {
            let m = format!("vision_tower.layers.{i}.self_attn.q_proj");
            base = base.tensor(&format!("{m}.weight"), &[32, 32]);
            a = a.linear(&m, 8, 32, 32);
        }
        let r = run(&a, &base);
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
    }

    #[test]
    fn a_target_module_missing_from_the_base_is_incompatible() {
        let base = llama(2).without("model.layers.1.mlp.gate_proj.weight");
        let a = Adapter::new(lora_config(8, &["gate_proj"]))
            .linear("model.layers.0.mlp.gate_proj", 8, 64, 128)
            .linear("model.layers.1.mlp.gate_proj", 8, 64, 128);
        let r = run(&a, &base);
        assert_eq!(r.verdict, Verdict::Incompatible);
        assert_eq!(codes(&r.findings.errors), ["base_tensor_missing"]);
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("model.layers.1.mlp.gate_proj")
        );
        assert!(r.modules[0].ok);
        assert!(!r.modules[1].ok);
        assert_eq!(r.modules[1].base_tensor, None);
    }

    #[test]
    fn an_adapter_with_more_layers_than_the_base_is_incompatible() {
        // Trained on 8 layers, the base has 4: PEFT would drop layers 4–7 silently.
        let a = llama_adapter(8, 8, &["q_proj"], 64);
        let r = run(&a, &llama(4));
        assert_eq!(r.verdict, Verdict::Incompatible);
        assert_eq!(codes(&r.findings.errors), ["layer_out_of_range"; 4]);
        let msg = &r.findings.errors[0].message;
        assert!(
            msg.contains("layer 4 does not exist in the base: it has layers 0–3"),
            "{msg}"
        );
        assert_eq!(r.modules.iter().filter(|m| m.ok).count(), 4);
    }

    #[test]
    fn a_gpt2_conv1d_adapter_is_checked_in_its_in_out_layout() {
        let cfg = json!({"r": 8, "lora_alpha": 16, "fan_in_fan_out": true,
                         "target_modules": ["c_attn"], "task_type": "CAUSAL_LM"});
        let a = Adapter::new(cfg.clone())
            .linear("transformer.h.0.attn.c_attn", 8, 64, 192)
            .linear("transformer.h.1.attn.c_attn", 8, 64, 192);
        let r = run(&a, &gpt2(2));
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert!(r.modules.iter().all(|m| m.ok && m.fan_in_fan_out));
        assert_eq!(
            r.modules[0].base_tensor.as_deref(),
            Some("h.0.attn.c_attn.weight")
        );
        assert_eq!(r.modules[0].base_shape, Some(vec![64, 192]));
        assert_eq!(r.base.hidden_size, Some(64));
        assert!(r.base.tied_embeddings);
        assert_eq!(r.serving.stacks["lorax"]["architecture"], "gpt2");
        assert!(problems(&r, "lorax").is_empty());

        // The same adapter for a wider GPT-2 (n_embd 128) fits neither layout.
        let wide = Adapter::new(cfg).linear("transformer.h.0.attn.c_attn", 8, 128, 384);
        let r = run(&wide, &gpt2(2));
        assert_eq!(r.verdict, Verdict::Incompatible);
        assert_eq!(
            codes(&r.findings.errors),
            ["base_shape_mismatch", "hidden_size_mismatch"]
        );
    }

    #[test]
    fn an_embedding_with_another_vocabulary_is_incompatible() {
        let e = "model.embed_tokens";
        let a = Adapter::new(lora_config(8, &["embed_tokens"]))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[8, 120])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        let r = run(&a, &llama(1));
        assert_eq!(r.verdict, Verdict::Incompatible);
        assert_eq!(
            codes(&r.findings.errors),
            ["base_shape_mismatch", "vocab_size_mismatch"]
        );
        let msg = &r.findings.errors[1].message;
        assert!(
            msg.contains("120 token rows") && msg.contains("vocabulary is 100"),
            "{msg}"
        );
        assert!(problems(&r, "vllm").contains(&"embedding_vocab_mismatch".to_owned()));

        // The right vocabulary: compatible; vLLM notes the model-dependent support.
        let ok = Adapter::new(lora_config(8, &["embed_tokens"]))
            .tensor(&format!("{P}{e}.lora_embedding_A"), &[8, 100])
            .tensor(&format!("{P}{e}.lora_embedding_B"), &[64, 8]);
        let r = run(&ok, &llama(1));
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert_eq!(r.modules[0].kind, ModuleKind::Embedding);
        assert_eq!(notes(&r, "vllm"), ["embedding_lora_model_dependent"]);
        assert_eq!(
            problems(&r, "lorax"),
            ["modules_ignored", "weights_ignored"]
        );
    }

    #[test]
    fn resized_modules_to_save_against_the_vocabulary() {
        // lm_head saved with 2 added tokens: the base's vocabulary is 100.
        let mut cfg = lora_config(8, &["q_proj"]);
        cfg["modules_to_save"] = json!(["lm_head"]);
        let a = Adapter::new(cfg)
            .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
            .tensor(&format!("{P}lm_head.weight"), &[102, 64]);
        let r = run(&a, &llama(1));
        assert_eq!(
            codes(&r.findings.errors),
            ["saved_shape_mismatch", "vocab_size_mismatch"]
        );
        assert_eq!(r.modules_to_save.len(), 1);
        assert!(!r.modules_to_save[0].ok);
        assert_eq!(r.modules_to_save[0].base_shape, Some(vec![100, 64]));
        assert_eq!(problems(&r, "vllm"), ["modules_to_save_unsupported"]);
        assert_eq!(problems(&r, "llama.cpp"), ["conversion_fails"]);
    }

    #[test]
    fn a_dora_adapter_fits_the_base_but_not_vllm_lorax_or_llama_cpp() {
        let q = "model.layers.0.self_attn.q_proj";
        let mut cfg = lora_config(16, &["q_proj"]);
        cfg["use_dora"] = json!(true);
        let a = Adapter::new(cfg)
            .linear(q, 16, 64, 64)
            .tensor(&format!("{P}{q}.lora_magnitude_vector"), &[64]);
        let r = run(&a, &llama(1));
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert!(r.modules[0].dora);
        let v = json(&r);
        assert_eq!(v["serving"]["stacks"]["vllm"]["loads"], false);
        assert_eq!(v["serving"]["stacks"]["vllm"]["max_lora_rank"], 16);
        assert_eq!(problems(&r, "vllm"), ["dora_unsupported"]);
        assert_eq!(problems(&r, "lorax"), ["dora_ignored"]);
        assert_eq!(problems(&r, "llama.cpp"), ["conversion_fails"]);
        let msg = v["serving"]["stacks"]["llama.cpp"]["problems"][0]["message"]
            .as_str()
            .unwrap();
        assert!(msg.contains(&format!("{q}.lora_magnitude_vector")), "{msg}");
    }

    #[test]
    fn a_differing_base_content_digest_is_a_warning_when_shapes_agree() {
        let base = llama(2).content(Digest::of_bytes(b"weights v2"));
        let a = llama_adapter(8, 2, &["q_proj"], 64);
        let recorded = BaseModelRef {
            name_or_path: Some("tiny/llama".into()),
            reference: None,
            content_digest: Some(Digest::of_bytes(b"weights v1")),
            shape_fingerprint: Some(base.fingerprint()),
        };
        let r = run_recorded(&a, &base, Some(recorded.clone()));
        assert_eq!(r.verdict, Verdict::CompatibleWithWarnings);
        assert_eq!(codes(&r.findings.warnings), ["base_content_differs"]);
        assert_eq!(json(&r)["verdict"], "compatible_with_warnings");

        // The same digest: compatible.
        let same = BaseModelRef {
            content_digest: Some(Digest::of_bytes(b"weights v2")),
            ..recorded
        };
        assert_eq!(
            run_recorded(&a, &base, Some(same)).verdict,
            Verdict::Compatible
        );
    }

    #[test]
    fn vllm_max_lora_rank_is_the_smallest_accepted_value_that_fits_every_module() {
        let rank_of = |r: u64, pattern: Option<u64>| {
            let mut cfg = lora_config(r, &["q_proj", "v_proj"]);
            let v_rank = pattern.unwrap_or(r);
            if let Some(p) = pattern {
                cfg["rank_pattern"] = json!({"v_proj": p});
            }
            let a = Adapter::new(cfg)
                .linear("model.layers.0.self_attn.q_proj", r, 64, 64)
                .linear("model.layers.0.self_attn.v_proj", v_rank, 64, 64);
            run(&a, &llama(1))
        };
        let max = |r: &adapter_core::compat::CompatReport| {
            r.serving.stacks["vllm"]["max_lora_rank"].clone()
        };
        assert_eq!(max(&rank_of(1, None)), 1);
        assert_eq!(max(&rank_of(4, None)), 8);
        assert_eq!(max(&rank_of(8, None)), 8);
        assert_eq!(max(&rank_of(300, None)), 320);
        // rank_pattern raises one module to 40: the slots must hold it.
        let r = rank_of(8, Some(40));
        assert_eq!(max(&r), 64);
        assert_eq!(r.serving.stacks["lorax"]["padded_rank"], 48);
        assert_eq!(problems(&r, "lorax"), ["per_module_scale_ignored"]);
        // Beyond 512: no flag fits.
        let r = rank_of(8, Some(600));
        assert_eq!(max(&r), serde_json::Value::Null);
        assert_eq!(problems(&r, "vllm"), ["rank_too_large"]);
        assert_eq!(notes(&r, "lorax"), ["rank_above_fast_path"]);
    }

    #[test]
    fn llama_cpp_refuses_lm_head_on_a_tied_base_and_flags_rslora() {
        let mut cfg = lora_config(8, &["lm_head"]);
        cfg["use_rslora"] = json!(true);
        let a = Adapter::new(cfg).linear("lm_head", 8, 64, 100);
        let tied = llama(1).config("tie_word_embeddings", json!(true));
        let r = run(&a, &tied);
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert_eq!(problems(&r, "llama.cpp"), ["lm_head_tied", "rslora_scale"]);
        let untied = run(&a, &llama(1));
        assert_eq!(problems(&untied, "llama.cpp"), ["rslora_scale"]);
    }

    #[test]
    fn trained_biases_are_refused_by_vllm_dropped_by_lorax_and_stop_llama_cpp() {
        let q = "model.layers.0.self_attn.q_proj";
        let base = llama(1).tensor(&format!("{q}.bias"), &[64]);
        let mut cfg = lora_config(8, &["q_proj"]);
        cfg["bias"] = json!("lora_only");
        let a = Adapter::new(cfg)
            .linear(q, 8, 64, 64)
            .tensor(&format!("{P}{q}.bias"), &[64]);
        let r = run(&a, &base);
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert_eq!(problems(&r, "vllm"), ["bias_unsupported"]);
        assert_eq!(problems(&r, "lorax"), ["weights_ignored"]);
        assert_eq!(problems(&r, "llama.cpp"), ["conversion_fails"]);
    }

    #[test]
    fn lorax_ignores_modules_its_architecture_does_not_list() {
        let base = llama(1).config("model_type", json!("mixtral"));
        let a = Adapter::new(lora_config(8, &["q_proj", "gate_proj"]))
            .linear("model.layers.0.self_attn.q_proj", 8, 64, 64)
            .linear("model.layers.0.mlp.gate_proj", 8, 64, 128);
        let r = run(&a, &base);
        assert_eq!(r.verdict, Verdict::Compatible, "{:?}", r.findings);
        assert_eq!(problems(&r, "lorax"), ["modules_ignored"]);
        let msg = r.serving.stacks["lorax"]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains("on mixtral: gate_proj"), "{msg}");
        // An architecture LoRAX does not document: a note, not a problem.
        let r = run(&a, &llama(1).config("model_type", json!("olmo")));
        assert!(problems(&r, "lorax").is_empty());
        assert_eq!(notes(&r, "lorax"), ["architecture_unlisted"]);
    }

    #[test]
    fn hostile_configs_give_an_incompatible_report_not_a_panic() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"r\": -1}",
            b"{\"target_modules\": \"(?<=x)q\"}",
        ] {
            let facts = adapter_core::compat::AdapterFacts {
                config_json: bad.to_vec(),
                tensors: Vec::new(),
                recorded_base: None,
            };
            let r = adapter_core::compat::validate(&facts, &llama(1).facts());
            assert_eq!(
                r.verdict,
                Verdict::Incompatible,
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_eq!(codes(&r.findings.errors), ["invalid_config"]);
            assert!(r.modules.is_empty());
        }
    }

    #[test]
    fn a_base_without_config_json_still_gets_tensor_checks() {
        let mut base = llama(2);
        base.config = None;
        let r = run(&llama_adapter(8, 3, &["q_proj"], 64), &base);
        assert_eq!(codes(&r.findings.errors), ["layer_out_of_range"]);
        assert_eq!(r.base.hidden_size, None);
        assert_eq!(r.serving.stacks["vllm"]["max_lora_rank"], 8);
    }
}
