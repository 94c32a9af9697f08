//! `inspect_adapter_dir` on real files written with the reference safetensors crate.

mod peft_support;

/// Named `peft` so that `cargo test -p adapter-core peft` selects these tests.
mod peft {

    use crate::peft_support::{Adapter, Fill, P, codes, llama_base};
    use adapter_core::peft::{PeftError, inspect_adapter_dir};
    use serde_json::json;

    fn llama(config: serde_json::Value) -> Adapter {
        Adapter::new(config)
            .linear("model.layers.0.self_attn.q_proj", 4, 64, 64)
            .linear("model.layers.0.self_attn.v_proj", 4, 64, 64)
    }

    const CFG: &str =
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}"#;

    fn config() -> serde_json::Value {
        serde_json::from_str(CFG).unwrap()
    }

    #[test]
    fn a_trained_adapter_reads_clean_with_and_without_a_base() {
        let dir = tempfile::tempdir().unwrap();
        llama(config()).write(dir.path());
        let r = inspect_adapter_dir(dir.path(), None).unwrap();
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
        assert_eq!(r.target_modules, ["q_proj", "v_proj"]);
        assert_eq!(r.tensor_count, 4);
        assert_eq!(r.parameters, 2 * (4 * 64 + 64 * 4));
        assert!(r.mergeable);
        let r = inspect_adapter_dir(dir.path(), Some(&llama_base(2))).unwrap();
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        let r = inspect_adapter_dir(dir.path(), Some(&llama_base(0))).unwrap();
        assert_eq!(
            codes(&r.findings.errors),
            ["base_tensor_missing", "base_tensor_missing"]
        );
    }

    #[test]
    fn nan_and_inf_are_errors_with_counts() {
        let dir = tempfile::tempdir().unwrap();
        Adapter::new(config())
            .filled(
                &format!("{P}model.layers.0.self_attn.q_proj.lora_A.weight"),
                &[4, 64],
                Fill::Nan(3),
            )
            .tensor(
                &format!("{P}model.layers.0.self_attn.q_proj.lora_B.weight"),
                &[64, 4],
            )
            .tensor(
                &format!("{P}model.layers.0.self_attn.v_proj.lora_A.weight"),
                &[4, 64],
            )
            .filled(
                &format!("{P}model.layers.0.self_attn.v_proj.lora_B.weight"),
                &[64, 4],
                Fill::Inf(2),
            )
            .write(dir.path());
        let r = inspect_adapter_dir(dir.path(), None).unwrap();
        assert_eq!(
            codes(&r.findings.errors),
            ["nan_in_tensor", "inf_in_tensor"]
        );
        assert!(
            r.findings.errors[0].message.contains("3 NaN"),
            "{}",
            r.findings.errors[0].message
        );
        assert!(
            r.findings.errors[1].message.contains("2 infinite"),
            "{}",
            r.findings.errors[1].message
        );
        assert_eq!(
            r.findings.errors[0].subject.as_deref(),
            Some("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
        );
        assert!(!r.mergeable);
    }

    #[test]
    fn all_zero_lora_b_everywhere_is_an_untrained_adapter() {
        let dir = tempfile::tempdir().unwrap();
        let q = "model.layers.0.self_attn.q_proj";
        let v = "model.layers.0.self_attn.v_proj";
        let untrained = Adapter::new(config())
            .tensor(&format!("{P}{q}.lora_A.weight"), &[4, 64])
            .filled(&format!("{P}{q}.lora_B.weight"), &[64, 4], Fill::Zeros)
            .tensor(&format!("{P}{v}.lora_A.weight"), &[4, 64])
            .filled(&format!("{P}{v}.lora_B.weight"), &[64, 4], Fill::Zeros);
        untrained.write(dir.path());
        let r = inspect_adapter_dir(dir.path(), None).unwrap();
        assert!(r.findings.errors.is_empty(), "{:?}", r.findings.errors);
        assert_eq!(codes(&r.findings.warnings), ["untrained_adapter"]);
        assert!(r.findings.warnings[0].message.contains("all 2 lora_B"));

        // One trained module is enough.
        let dir = tempfile::tempdir().unwrap();
        Adapter::new(config())
            .tensor(&format!("{P}{q}.lora_A.weight"), &[4, 64])
            .filled(&format!("{P}{q}.lora_B.weight"), &[64, 4], Fill::Zeros)
            .tensor(&format!("{P}{v}.lora_A.weight"), &[4, 64])
            .tensor(&format!("{P}{v}.lora_B.weight"), &[64, 4])
            .write(dir.path());
        let r = inspect_adapter_dir(dir.path(), None).unwrap();
        assert!(r.findings.warnings.is_empty(), "{:?}", r.findings.warnings);
    }

    #[test]
    fn pickle_only_adapters_are_refused_with_a_conversion_hint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("adapter_config.json"), CFG).unwrap();
        std::fs::write(dir.path().join("adapter_model.bin"), b"PK\x03\x04").unwrap();
        let e = inspect_adapter_dir(dir.path(), None).unwrap_err();
        assert!(matches!(e, PeftError::PickleOnly { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("pickle")
                && msg.contains("save_file")
                && msg.contains("adapter_model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn missing_or_broken_files_are_errors_not_findings() {
        let dir = tempfile::tempdir().unwrap();
        let e = inspect_adapter_dir(dir.path(), None).unwrap_err();
        assert!(
            matches!(e, PeftError::Missing { ref path } if path.ends_with("adapter_config.json")),
            "{e:?}"
        );

        std::fs::write(dir.path().join("adapter_config.json"), CFG).unwrap();
        let e = inspect_adapter_dir(dir.path(), None).unwrap_err();
        assert!(
            matches!(e, PeftError::Missing { ref path } if path.ends_with("adapter_model.safetensors")),
            "{e:?}"
        );

        std::fs::write(
            dir.path().join("adapter_model.safetensors"),
            b"\x05\x00\x00\x00\x00\x00\x00\x00{}",
        )
        .unwrap();
        let e = inspect_adapter_dir(dir.path(), None).unwrap_err();
        assert!(matches!(e, PeftError::Safetensors { .. }), "{e:?}");

        std::fs::write(
            dir.path().join("adapter_config.json"),
            br#"{"r": 8, "r": 8}"#,
        )
        .unwrap();
        let e = inspect_adapter_dir(dir.path(), None).unwrap_err();
        assert!(e.to_string().contains("duplicate key"), "{e}");
    }

    #[test]
    fn the_json_report_has_top_level_errors_and_warnings() {
        let dir = tempfile::tempdir().unwrap();
        llama(json!({"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj", "k_proj"]}))
            .write(dir.path());
        let r = inspect_adapter_dir(dir.path(), None).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["warnings"][0]["code"], "unused_target");
        assert_eq!(v["errors"], json!([]));
        assert_eq!(v["modules"][0]["module"], "model.layers.0.self_attn.q_proj");
        assert_eq!(v["modules"][0]["scale"], 2.0);
        assert_eq!(v["dtypes"], json!(["F32"]));
    }
}
