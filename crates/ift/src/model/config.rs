//! `config.json`: the wire format as Hugging Face writes it (every field
//! optional, unknown keys ignored), resolved once into [`LlamaConfig`].
//!
//! Both generations of `config.json` are read: `transformers` 4.x writes
//! `rope_theta` + `rope_scaling` and `torch_dtype`; 5.x writes
//! `rope_parameters` and `dtype`.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The raw `config.json`, as written by `transformers` 4.x or 5.x.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ConfigWire {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: Option<usize>,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeWire>,
    pub rope_parameters: Option<RopeWire>,
    pub max_position_embeddings: Option<usize>,
    pub tie_word_embeddings: Option<bool>,
    pub attention_bias: Option<bool>,
    pub mlp_bias: Option<bool>,
    pub hidden_act: Option<String>,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    pub torch_dtype: Option<String>,
    pub dtype: Option<String>,
}

/// `rope_scaling` (4.x) or `rope_parameters` (5.x). 4.x sometimes spells
/// `rope_type` as `type`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RopeWire {
    pub rope_type: Option<String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub rope_theta: Option<f64>,
    pub factor: Option<f64>,
    pub low_freq_factor: Option<f64>,
    pub high_freq_factor: Option<f64>,
    pub original_max_position_embeddings: Option<usize>,
}

/// The model families one decoder serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
}

/// How rotary frequencies are derived from `rope_theta`.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE: `inv_freq_i = theta^(-2i/d)`.
    Default,
    /// Llama 3.1's frequency-dependent rescaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// A validated configuration: every value the decoder needs, no `Option`s
/// left where a default exists.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q, k and v (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on o_proj (Llama's `attention_bias` only).
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Mistral's sliding attention window, if any.
    pub sliding_window: Option<usize>,
    /// The dtype the checkpoint declares (`float32`, `float16`, `bfloat16`).
    pub torch_dtype: Option<String>,
}

impl LlamaConfig {
    /// The weight dtype `config.json` declares (f32 when it declares none).
    pub fn declared_dtype(&self) -> candle_core::DType {
        match self.torch_dtype.as_deref() {
            Some("bfloat16") => candle_core::DType::BF16,
            Some("float16") => candle_core::DType::F16,
            _ => candle_core::DType::F32,
        }
    }

    /// Reads and resolves `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let wire: ConfigWire = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::resolve(&wire, path)
    }

    /// Turns the wire struct into a validated config; `path` is only used
    /// to name the file in errors.
    pub fn resolve(w: &ConfigWire, path: &Path) -> Result<Self> {
        let err = |field: &str, message: String| Error::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let family = resolve_family(w).map_err(|m| err("architectures", m))?;
        let need = |v: Option<usize>, field: &str| {
            v.filter(|&x| x > 0)
                .ok_or_else(|| err(field, "required and must be a positive integer".into()))
        };
        let hidden_size = need(w.hidden_size, "hidden_size")?;
        let num_attention_heads = need(w.num_attention_heads, "num_attention_heads")?;
        let num_key_value_heads = w.num_key_value_heads.unwrap_or(num_attention_heads);
        let head_dim = match w.head_dim {
            Some(d) => d,
            None if hidden_size % num_attention_heads != 0 => {
                return Err(err(
                    "hidden_size",
                    format!(
                    "{hidden_size} is not divisible by num_attention_heads = {num_attention_heads}"
                ),
                ))
            }
            None => hidden_size / num_attention_heads,
        };
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(err(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads = {num_attention_heads}"),
            ));
        }
        if head_dim % 2 != 0 {
            return Err(err(
                "head_dim",
                format!("{head_dim} must be even for rotary embeddings"),
            ));
        }
        if let Some(act) = w.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(err(
                "hidden_act",
                format!("`{act}` is not supported (only `silu`)"),
            ));
        }
        let (rope_theta, rope_scaling) = resolve_rope(w).map_err(|(f, m)| err(f, m))?;
        let attention_bias = w.attention_bias.unwrap_or(false);
        let sliding_window = match family {
            Family::Mistral => w.sliding_window,
            Family::Qwen2 if w.use_sliding_window == Some(true) => {
                return Err(err(
                    "use_sliding_window",
                    "Qwen2 sliding-window attention is not supported".into(),
                ))
            }
            _ => None,
        };
        Ok(LlamaConfig {
            family,
            vocab_size: need(w.vocab_size, "vocab_size")?,
            hidden_size,
            intermediate_size: need(w.intermediate_size, "intermediate_size")?,
            num_hidden_layers: need(w.num_hidden_layers, "num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: w.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: w.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: w.tie_word_embeddings.unwrap_or(false),
            qkv_bias: family == Family::Qwen2 || attention_bias,
            o_bias: family != Family::Qwen2 && attention_bias,
            mlp_bias: w.mlp_bias.unwrap_or(false),
            sliding_window,
            torch_dtype: w.dtype.clone().or_else(|| w.torch_dtype.clone()),
        })
    }
}

fn resolve_family(w: &ConfigWire) -> std::result::Result<Family, String> {
    let from_name = |n: &str| match n {
        "llama" | "LlamaForCausalLM" => Some(Family::Llama),
        "mistral" | "MistralForCausalLM" => Some(Family::Mistral),
        "qwen2" | "Qwen2ForCausalLM" => Some(Family::Qwen2),
        _ => None,
    };
    let arch = w.architectures.as_ref().and_then(|a| a.first());
    let name = arch.or(w.model_type.as_ref());
    match name {
        None => Err("neither `architectures` nor `model_type` is set".into()),
        Some(n) => from_name(n).ok_or_else(|| {
            format!("`{n}` is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)")
        }),
    }
}

type RopeResult = std::result::Result<(f64, RopeScaling), (&'static str, String)>;

fn resolve_rope(w: &ConfigWire) -> RopeResult {
    // 5.x keeps theta inside `rope_parameters`; 4.x beside it.
    let (field, params) = match (&w.rope_parameters, &w.rope_scaling) {
        (Some(p), _) => ("rope_parameters", Some(p)),
        (None, s) => ("rope_scaling", s.as_ref()),
    };
    let theta = params
        .and_then(|p| p.rope_theta)
        .or(w.rope_theta)
        .unwrap_or(10000.0);
    let kind = params.and_then(|p| p.rope_type.clone().or_else(|| p.type_.clone()));
    let scaling = match kind.as_deref() {
        None | Some("default") => RopeScaling::Default,
        Some("llama3") => {
            let p = params.expect("kind came from params");
            let get = |v: Option<f64>, name: &str| {
                v.ok_or((field, format!("llama3 rope needs `{name}`")))
            };
            RopeScaling::Llama3 {
                factor: get(p.factor, "factor")?,
                low_freq_factor: get(p.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: get(p.high_freq_factor, "high_freq_factor")?,
                original_max_position_embeddings: p.original_max_position_embeddings.ok_or((
                    field,
                    "llama3 rope needs `original_max_position_embeddings`".into(),
                ))?,
            }
        }
        Some(other) => {
            return Err((
                field,
                format!("rope type `{other}` is not supported (supported: default, llama3)"),
            ))
        }
    };
    Ok((theta, scaling))
}

impl LlamaConfig {
    /// A `config.json` for this configuration, in the 4.x key style that
    /// both `transformers` 4.x and 5.x read. `initializer_range` is recorded
    /// for random models.
    pub fn to_hf_json(&self, initializer_range: f64) -> serde_json::Value {
        let (arch, model_type) = match self.family {
            Family::Llama => ("LlamaForCausalLM", "llama"),
            Family::Mistral => ("MistralForCausalLM", "mistral"),
            Family::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        };
        let rope_scaling = match &self.rope_scaling {
            RopeScaling::Default => serde_json::Value::Null,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => serde_json::json!({
                "rope_type": "llama3",
                "factor": factor,
                "low_freq_factor": low_freq_factor,
                "high_freq_factor": high_freq_factor,
                "original_max_position_embeddings": original_max_position_embeddings,
            }),
        };
        let mut v = serde_json::json!({
            "architectures": [arch],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": initializer_range,
            "torch_dtype": "float32",
        });
        if self.family == Family::Llama {
            v["attention_bias"] = self.o_bias.into();
            v["mlp_bias"] = self.mlp_bias.into();
        }
        if let Some(w) = self.sliding_window {
            v["sliding_window"] = w.into();
        }
        v
    }
}
