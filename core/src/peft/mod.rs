//! PEFT adapters: `adapter_config.json`, target matching, tensor-name mapping, and the checks
//! that tell whether an adapter is what its config says and fits its base.
//!
//! Every rule follows Hugging Face PEFT's source; each function cites the file it mirrors.
//! Pure functions ([`analyze`], [`check_against_base`], [`build_report`]) work on a config and
//! headers, so the server can run them on uploaded bytes; [`inspect_adapter_dir`] reads a
//! directory and adds the data checks ([`check_data`]).

mod analyze;
mod base;
mod config;
mod data;
mod error;
mod fields;
mod mapping;
mod report;
mod targets;
mod values;

pub use analyze::{AdaptedModule, Analysis, ModuleKind, ModuleTensors, SavedTensor, analyze};
pub use base::check_against_base;
pub use config::{AdapterConfig, KNOWN_PEFT_TYPES};
pub use data::check_data;
pub use error::PeftError;
pub use mapping::{Mapped, PREFIX, Role, Unrecognised, base_weight, classify, strip_prefix};
pub use report::{
    AdapterReport, CONFIG_FILE, ModuleReport, PICKLE_FILE, SavedTensorReport, WEIGHTS_FILE,
    build_report, inspect_adapter_dir,
};
pub use targets::{ModuleScale, Targeting, Verdict, layer_segment, scale, suffix_match};
pub use values::{Bias, InitLoraWeights, LayersToTransform, ModulePatterns, TargetModules};
