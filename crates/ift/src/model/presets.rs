//! The benchmark models' configurations (`ift bench`, the criterion benches,
//! `scripts/bench/versus_torch.py` builds the same models in PyTorch).

use super::config::{Family, LlamaConfig, RopeScaling};
use crate::error::{Error, Result};

/// The benchmark models' names; keep in step with `scripts/bench/versus_torch.py`.
pub const PRESETS: [&str; 3] = ["32m", "smollm2", "1b"];

/// A benchmark model's configuration (random weights are built from it): `32m` (vocab 8192, hidden 512, 8
/// layers), `smollm2` (SmolLM2-135M's `config.json`) or `1b` (Llama 3.2 1B's
/// shapes, default RoPE).
pub fn preset(name: &str) -> Result<LlamaConfig> {
    let m32 = LlamaConfig {
        family: Family::Llama,
        vocab_size: 8192,
        hidden_size: 512,
        intermediate_size: 1408,
        num_hidden_layers: 8,
        num_attention_heads: 8,
        num_key_value_heads: 4,
        head_dim: 64,
        rms_norm_eps: 1e-6,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::Default,
        max_position_embeddings: 2048,
        tie_word_embeddings: false,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
        torch_dtype: Some("float32".into()),
    };
    Ok(match name {
        "32m" => m32,
        "smollm2" => LlamaConfig {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            rms_norm_eps: 1e-5,
            rope_theta: 100000.0,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            ..m32
        },
        "1b" => LlamaConfig {
            vocab_size: 128256,
            hidden_size: 2048,
            intermediate_size: 8192,
            num_hidden_layers: 16,
            num_attention_heads: 32,
            num_key_value_heads: 8,
            rms_norm_eps: 1e-5,
            rope_theta: 500000.0,
            max_position_embeddings: 131072,
            tie_word_embeddings: true,
            ..m32
        },
        other => {
            return Err(Error::Usage(format!(
                "unknown benchmark model `{other}`; one of {PRESETS:?}"
            )))
        }
    })
}
