//! PEFT adapters: adapter_config.json, target matching, name mapping, checks. (Being written.)
