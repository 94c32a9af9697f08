//! adapter_config.json: PEFT defaults, kept unknown fields, clear type errors, non-LoRA types.

mod peft_support;

/// Named `peft` so that `cargo test -p adapter-core peft` selects these tests.
mod peft {

    use crate::peft_support::codes;
    use adapter_core::peft::{
        AdapterConfig, Bias, InitLoraWeights, LayersToTransform, PeftError, TargetModules,
        build_report,
    };
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AdapterConfig, PeftError> {
        AdapterConfig::from_json_bytes(v.to_string().as_bytes())
    }

    #[test]
    fn missing_fields_take_peft_defaults_and_unknown_fields_are_kept_in_order() {
        let c = parse(
            json!({"zeta": 1, "target_modules": ["q_proj"], "lora_dropout": 0.05, "alpha": "x"}),
        )
        .unwrap();
        assert_eq!(c.peft_type, "LORA");
        assert_eq!(c.r, 8);
        assert_eq!(c.lora_alpha, 8.0);
        assert_eq!(c.bias, Bias::None);
        assert_eq!(c.init_lora_weights, InitLoraWeights::Bool(true));
        assert!(!c.use_rslora && !c.use_dora && !c.fan_in_fan_out && !c.lora_bias);
        let extra: Vec<&str> = c.extra.keys().map(String::as_str).collect();
        assert_eq!(extra, ["zeta", "lora_dropout", "alpha"]);
    }

    #[test]
    fn nulls_mean_absent() {
        let c = parse(
        json!({"r": 16, "layers_to_transform": null, "layers_pattern": null, "target_modules": null,
        "modules_to_save": null, "revision": null}),
    )
    .unwrap();
        assert_eq!(c.r, 16);
        assert!(c.layers_to_transform.is_none() && c.target_modules.is_none());
        assert!(c.modules_to_save.is_empty());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse(json!({"r": "8"})).unwrap_err().to_string();
        assert!(e.contains("`r`") && e.contains("a string"), "{e}");
        let e = parse(json!({"rank_pattern": {"q_proj": "4"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`rank_pattern.q_proj`"), "{e}");
        let e = parse(json!({"target_modules": [1]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`target_modules[0]`"), "{e}");
        let e = parse(json!({"use_dora": "yes"})).unwrap_err().to_string();
        assert!(e.contains("`use_dora`"), "{e}");
        let e = parse(json!({"bias": "some"})).unwrap_err().to_string();
        assert!(e.contains("`bias`") && e.contains("lora_only"), "{e}");
        let e = parse(json!({"layers_to_transform": [1, -2], "target_modules": ["q"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers_to_transform[1]`"), "{e}");
    }

    #[test]
    fn rank_must_be_positive() {
        for r in [json!(0), json!(-4)] {
            let e = parse(json!({"r": r})).unwrap_err().to_string();
            assert!(e.contains("`r`") && e.contains("> 0"), "{e}");
        }
        let e = parse(json!({"rank_pattern": {"q": 0}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("> 0"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = AdapterConfig::from_json_bytes(br#"{"r": 8, "r": 16}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate key `r`"), "{e}");
    }

    #[test]
    fn target_modules_forms() {
        let c = parse(json!({"target_modules": "ALL-LINEAR"})).unwrap();
        assert_eq!(
            c.target_modules,
            Some(TargetModules::AllLinear("ALL-LINEAR".into()))
        );
        let c = parse(json!({"target_modules": ".*q_proj"})).unwrap();
        assert_eq!(
            c.target_modules,
            Some(TargetModules::Regex(".*q_proj".into()))
        );
        let c = parse(
        json!({"target_modules": ["v", "q"], "layers_to_transform": 3, "layers_pattern": "layers"}),
    )
    .unwrap();
        assert_eq!(
            c.target_modules,
            Some(TargetModules::List(vec!["v".into(), "q".into()]))
        );
        assert_eq!(c.layers_to_transform, Some(LayersToTransform::One(3)));
        assert_eq!(c.layers_pattern, Some(vec!["layers".to_owned()]));
    }

    #[test]
    fn peft_post_init_rules_are_enforced() {
        let e = parse(json!({"target_modules": ".*q", "layers_to_transform": [0]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers_to_transform`"), "{e}");
        let e = parse(json!({"target_modules": "all-linear", "layers_pattern": "layers"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`layers_pattern`"), "{e}");
        let e = parse(json!({"target_modules": ["q"], "layers_pattern": "layers"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layers_to_transform` must also be specified"),
            "{e}"
        );
    }

    #[test]
    fn pattern_maps_keep_file_order() {
        let c = AdapterConfig::from_json_bytes(
            br#"{"rank_pattern": {"z": 2, "a": 4, "m": 6}, "alpha_pattern": {"y": 1.5, "b": 3}}"#,
        )
        .unwrap();
        assert_eq!(
            c.rank_pattern,
            vec![("z".into(), 2), ("a".into(), 4), ("m".into(), 6)]
        );
        assert_eq!(c.alpha_pattern, vec![("y".into(), 1.5), ("b".into(), 3.0)]);
    }

    #[test]
    fn non_lora_types_are_recognised_and_not_mergeable() {
        for t in [
            "IA3",
            "LOHA",
            "LOKR",
            "VERA",
            "ADALORA",
            "PREFIX_TUNING",
            "PROMPT_TUNING",
            "P_TUNING",
            "OFT",
            "BOFT",
        ] {
            // Fields with other meanings (VeRA's r, prompt tuning's num_virtual_tokens) do not fail.
            let c =
                parse(json!({"peft_type": t, "r": "whatever", "num_virtual_tokens": 20})).unwrap();
            assert!(!c.is_lora());
            let report = build_report(&c, &[], None).unwrap();
            assert_eq!(codes(&report.findings.warnings), ["not_lora"], "{t}");
            assert!(
                report.findings.warnings[0]
                    .message
                    .contains("not mergeable")
            );
            assert!(!report.mergeable);
            assert_eq!(report.variant, t.to_ascii_lowercase());
        }
        let c = parse(json!({"peft_type": "MYSTERY"})).unwrap();
        let report = build_report(&c, &[], None).unwrap();
        assert!(
            report.findings.warnings[0]
                .message
                .contains("unknown PEFT type")
        );
    }

    #[test]
    fn base_rewriting_inits_need_conversion() {
        for m in ["pissa", "pissa_niter_16", "olora", "corda", "loftq"] {
            let c = parse(json!({"init_lora_weights": m, "target_modules": ["q"]})).unwrap();
            assert_eq!(
                codes(&c.findings().warnings),
                ["init_needs_conversion"],
                "{m}"
            );
        }
        for ok in [
            json!(true),
            json!(false),
            json!("gaussian"),
            json!("eva"),
            json!("orthogonal"),
        ] {
            let c = parse(json!({"init_lora_weights": ok, "target_modules": ["q"]})).unwrap();
            assert!(c.findings().warnings.is_empty(), "{ok}");
        }
        let c = parse(json!({"init_lora_weights": "mystery", "target_modules": ["q"]})).unwrap();
        assert_eq!(codes(&c.findings().warnings), ["unknown_init_method"]);
    }

    #[test]
    fn variants() {
        let v = |j| parse(j).unwrap().variant();
        assert_eq!(v(json!({})), "lora");
        assert_eq!(v(json!({"use_rslora": true})), "rslora");
        assert_eq!(v(json!({"use_dora": true})), "dora");
        assert_eq!(
            v(json!({"use_rslora": true, "use_dora": true})),
            "rslora+dora"
        );
    }
}
