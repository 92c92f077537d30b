//! The "32M" benchmark configuration, shared by the benches.

use ift::model::LlamaConfig;

/// `ift::bench`'s "32m" config (shared with the PyTorch script).
pub fn config_32m() -> LlamaConfig {
    ift::bench::model_config("32m").expect("32m is a bench model")
}
