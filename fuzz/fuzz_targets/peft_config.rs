//! `adapter_config.json` (`adapter_core::peft::AdapterConfig::from_json_bytes`) on arbitrary
//! bytes, then everything the registry derives from an accepted config: its findings, the
//! variant, the modules to save and the serialised summary.
#![no_main]

use adapter_core::peft::AdapterConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = AdapterConfig::from_json_bytes(data) else {
        return;
    };
    let _ = config.findings();
    let _ = config.variant();
    let _ = config.is_lora();
    let _ = config.effective_modules_to_save();
    // Every accepted config is serialisable (the inspect report and the summary embed it).
    serde_json::to_vec(&config).expect("an accepted config serialises");
    // Parsing is a function of the bytes.
    assert_eq!(
        AdapterConfig::from_json_bytes(data).ok().as_ref(),
        Some(&config)
    );
});
