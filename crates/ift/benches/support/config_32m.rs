//! The "32M" benchmark configuration, shared by the benches.

use ift::model::{Family, LlamaConfig, RopeScaling};

/// The "32M" config shared with the PyTorch script: keep the two in step.
pub fn config_32m() -> LlamaConfig {
    LlamaConfig {
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
    }
}
