//! The "32M" benchmark configuration, shared by the benches.

use ift::model::LlamaConfig;

/// `ift::model::presets`' "32m" config (shared with the PyTorch script).
pub fn config_32m() -> LlamaConfig {
    ift::model::presets::preset("32m").expect("32m is a bench model")
}
