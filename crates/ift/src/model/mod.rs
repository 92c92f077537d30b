//! The Llama-family decoder, its configuration, and Hugging Face checkpoints.

mod attention;
mod build;
mod cache;
pub mod config;
pub mod gguf;
mod layers;
mod llama;
mod params;
mod pretrained;
pub mod rope;
mod save;
pub mod weights;

pub use crate::atomic::{write_atomically, write_file_atomically};
pub use attention::{attention_bias, attention_bias_new_rows};
pub use cache::{position_ids_from_mask, KvCache};
pub use config::{ConfigWire, Family, LlamaConfig, RopeScaling};
pub use layers::softmax_last_dim;
pub use llama::{LlamaForCausalLM, ModelInput};
pub use params::{Parameters, Trainable};
pub use pretrained::{check_vocab, Pretrained};
pub use save::{copy_companions, SaveOptions, COMPANION_FILES};
