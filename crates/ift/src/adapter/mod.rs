//! Parameter-efficient fine-tuning: LoRA adapters in PEFT's format. `[adapter]`
//! (`config.rs`), PEFT's directory (`peft.rs`), putting an adapter on a model
//! and merging it (`load.rs`), the base an adapter belongs to (`base.rs`), the policy a run trains (`policy.rs`). The
//! layer maths is `model/lora.rs`; a quantised frozen base `model/quantized.rs`.

mod base;
mod config;
mod load;
mod peft;
mod policy;

pub use base::{check_base, BaseFingerprint, BASE_FILE};
pub use config::{AdapterConfig, AdapterKind, LoraConfig, TargetModule};
pub use load::{attach_fresh, attach_saved, load_for_inference, load_merged};
pub use peft::{
    is_adapter_dir, peft_config_json, read_adapter_config, read_adapter_tensors,
    write_adapter_files, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
pub use policy::load_policy;
