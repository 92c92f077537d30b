//! `config.json` from a GGUF file's `{arch}.*` metadata.

use serde_json::{json, Value as Json};

use super::meta::Metadata;
use crate::error::GgufError;

/// The architectures we convert, from `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    pub fn from_metadata(meta: &Metadata) -> Result<Self, GgufError> {
        match meta.string("general.architecture")? {
            "llama" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            other => Err(GgufError::Architecture {
                path: meta.path.clone(),
                arch: other.to_string(),
            }),
        }
    }

    pub fn key_prefix(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// The shapes the tensor mapping needs.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

/// What the weights tell the config: the embedding's rows, whether the
/// head is tied, whether attention has biases.
pub struct WeightFacts {
    pub vocab_size: usize,
    pub tied: bool,
    pub attention_bias: bool,
}

pub fn dims(meta: &Metadata, arch: Arch) -> Result<Dims, GgufError> {
    let p = arch.key_prefix();
    let heads = meta.usize(&format!("{p}.attention.head_count"))?;
    Ok(Dims {
        layers: meta.usize(&format!("{p}.block_count"))?,
        heads,
        kv_heads: meta
            .opt_usize(&format!("{p}.attention.head_count_kv"))?
            .unwrap_or(heads),
    })
}

/// The Hugging Face `config.json` (transformers 4.x keys, which 5.x reads too).
pub fn config_json(meta: &Metadata, arch: Arch, facts: &WeightFacts) -> Result<Json, GgufError> {
    let p = arch.key_prefix();
    let d = dims(meta, arch)?;
    let hidden = meta.usize(&format!("{p}.embedding_length"))?;
    let eps_key = format!("{p}.attention.layer_norm_rms_epsilon");
    let eps = meta
        .opt_f64(&eps_key)?
        .ok_or_else(|| meta.bad(&eps_key, "missing (RMSNorm epsilon)"))?;
    let (architecture, model_type) = match arch {
        Arch::Llama => ("LlamaForCausalLM", "llama"),
        Arch::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
    };
    let mut config = json!({
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": meta.usize(&format!("{p}.feed_forward_length"))?,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": meta.opt_usize(&format!("{p}.context_length"))?.unwrap_or(2048),
        "rms_norm_eps": eps,
        "rope_theta": meta.opt_f64(&format!("{p}.rope.freq_base"))?.unwrap_or(10000.0),
        "rope_scaling": null,
        "tie_word_embeddings": facts.tied,
        "vocab_size": facts.vocab_size,
        "torch_dtype": "float32",
    });
    if arch == Arch::Llama {
        config["attention_bias"] = facts.attention_bias.into();
        config["mlp_bias"] = false.into();
    }
    if let Some(scaling) = meta.opt_string(&format!("{p}.rope.scaling.type"))? {
        if scaling != "none" {
            return Err(meta.bad(
                &format!("{p}.rope.scaling.type"),
                format!("rope scaling `{scaling}` is not supported"),
            ));
        }
    }
    let head_dim = hidden / d.heads;
    let key_length = meta.opt_usize(&format!("{p}.attention.key_length"))?;
    if let Some(k) = key_length.filter(|&k| k != head_dim) {
        config["head_dim"] = k.into();
    }
    for (key, field) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(id) = meta.opt_usize(key)? {
            config[field] = id.into();
        }
    }
    Ok(config)
}
