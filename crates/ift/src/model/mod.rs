//! The Llama-family decoder, its configuration, and Hugging Face checkpoints.

mod attention;
mod build;
mod cache;
pub mod config;
mod frozen;
pub mod gguf;
pub(crate) mod layers;
mod llama;
mod lora;
mod lora_config;
mod params;
pub mod presets;
mod pretrained;
mod quantized;
pub mod rope;
mod save;
pub mod weights;

pub use crate::atomic::{write_atomically, write_file_atomically};
pub use attention::{attention_bias, attention_bias_new_rows};
#[cfg(feature = "test-hooks")]
pub use build::checkpoint_loads_on_this_thread;
pub use cache::{position_ids_from_mask, KvCache};
pub use config::{ConfigWire, Family, LlamaConfig, RopeScaling};
pub use layers::{softmax_last_dim, Linear, Weight};
pub use llama::{DecoderLayer, LlamaForCausalLM, ModelInput};
pub use lora::{peft_name, Lora};
pub use lora_config::{LoraConfig, TargetModule};
pub use params::{Parameters, Trainable};
pub use pretrained::{check_same_tokenizer, check_vocab, Pretrained};
pub use quantized::{Quantize, QuantizedWeight};
pub use save::{copy_companions, SaveOptions, COMPANION_FILES};
