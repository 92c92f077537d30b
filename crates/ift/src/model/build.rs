//! Building a [`LlamaForCausalLM`] from a source of named tensors: a
//! checkpoint on disk, or a seeded random initialisation.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::attention::Attention;
use super::config::LlamaConfig;
use super::layers::{Linear, Mlp, RmsNorm};
use super::llama::{DecoderLayer, LlamaForCausalLM};
use super::params::{Parameters, Trainable};
use super::rope;
use super::weights::CheckpointTensors;
use crate::error::{Error, Result};

/// A function that yields the tensor of a given Hugging Face name and shape.
type Source<'a> = dyn FnMut(&str, &[usize]) -> Result<Tensor> + 'a;

#[cfg(feature = "test-hooks")]
thread_local! {
    static LOADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many model directories [`LlamaForCausalLM::from_pretrained`] has read
/// on this thread: lets a test assert that a run loaded no second model
/// (thread-local, so tests running in parallel do not see each other's).
/// The `test-hooks` feature only.
#[cfg(feature = "test-hooks")]
pub fn checkpoint_loads_on_this_thread() -> usize {
    LOADS.with(|n| n.get())
}

impl LlamaForCausalLM {
    /// Loads `config.json` and the safetensors weights of a Hugging Face
    /// model directory (tokenizer files are read by [`crate::tokenizer`]).
    pub fn from_pretrained(dir: &Path, trainable: &Trainable, device: &Device) -> Result<Self> {
        let tensors = CheckpointTensors::read(dir, device)?;
        Self::from_config_and_tensors(&dir.join("config.json"), tensors, trainable)
    }

    /// The model `config_path` describes, its weights taken from `tensors`
    /// (a checkpoint directory's, or a GGUF file's read in memory).
    pub(crate) fn from_config_and_tensors(
        config_path: &Path,
        mut tensors: CheckpointTensors,
        trainable: &Trainable,
    ) -> Result<Self> {
        #[cfg(feature = "test-hooks")]
        LOADS.with(|n| n.set(n.get() + 1));
        let config_path = config_path.to_path_buf();
        let raw = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let raw: serde_json::Value = serde_json::from_str(&raw).map_err(|source| Error::Json {
            path: config_path.clone(),
            source,
        })?;
        let wire = serde_json::from_value(raw.clone()).map_err(|source| Error::Json {
            path: config_path.clone(),
            source,
        })?;
        let config = LlamaConfig::resolve(&wire, &config_path)?;
        if config.tie_word_embeddings {
            // Some checkpoints store the tied head anyway; it is the same matrix.
            tensors.discard("lm_head.weight");
        }
        let mut model = build(
            config,
            &mut |name, shape| tensors.take(name, shape),
            trainable,
        )?;
        model.raw_config = raw;
        Ok(model)
    }

    /// A freshly initialised model: weights `N(0, std²)`, norms 1, biases 0,
    /// from a fixed seed (Hugging Face's `initializer_range` is `std`).
    pub fn random(
        config: LlamaConfig,
        std: f64,
        seed: u64,
        trainable: &Trainable,
        device: &Device,
    ) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let normal =
            Normal::new(0.0f32, std as f32).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut source = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let n: usize = shape.iter().product();
            let t = if name.ends_with("norm.weight") {
                Tensor::ones(shape, DType::F32, device)?
            } else if name.ends_with(".bias") {
                Tensor::zeros(shape, DType::F32, device)?
            } else {
                let v: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
                Tensor::from_vec(v, shape, device)?
            };
            Ok(t)
        };
        let raw = config.to_hf_json(std);
        let mut model = build(config, &mut source, trainable)?;
        model.raw_config = raw;
        Ok(model)
    }
}

fn build(
    cfg: LlamaConfig,
    source: &mut Source<'_>,
    trainable: &Trainable,
) -> Result<LlamaForCausalLM> {
    let mut params = Parameters::default();
    let mut get = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let t = source(name, shape)?;
        Ok(params.register(name, t, trainable)?)
    };
    let (hid, d) = (cfg.hidden_size, cfg.head_dim);
    let (h, kvh, inter) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.intermediate_size,
    );
    let embed_tokens = get("model.embed_tokens.weight", &[cfg.vocab_size, hid])?;
    // Not `with_capacity(num_hidden_layers)`: the count comes from an
    // untrusted config.json, and the checkpoint bounds it (a missing layer's
    // tensor is an error) only once the loop reaches it.
    let mut layers = Vec::new();
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        let mut linear = |name: String, out: usize, inp: usize, bias: bool| -> Result<Linear> {
            let weight = get(&format!("{name}.weight"), &[out, inp])?;
            let bias = if bias {
                Some(get(&format!("{name}.bias"), &[out])?)
            } else {
                None
            };
            Ok(Linear::dense(weight, bias))
        };
        let self_attn = Attention {
            q_proj: linear(format!("{p}.self_attn.q_proj"), h * d, hid, cfg.qkv_bias)?,
            k_proj: linear(format!("{p}.self_attn.k_proj"), kvh * d, hid, cfg.qkv_bias)?,
            v_proj: linear(format!("{p}.self_attn.v_proj"), kvh * d, hid, cfg.qkv_bias)?,
            o_proj: linear(format!("{p}.self_attn.o_proj"), hid, h * d, cfg.o_bias)?,
            num_heads: h,
            num_kv_heads: kvh,
            head_dim: d,
            fused_qkv: None,
        };
        let mlp = Mlp {
            gate_proj: linear(format!("{p}.mlp.gate_proj"), inter, hid, cfg.mlp_bias)?,
            up_proj: linear(format!("{p}.mlp.up_proj"), inter, hid, cfg.mlp_bias)?,
            down_proj: linear(format!("{p}.mlp.down_proj"), hid, inter, cfg.mlp_bias)?,
        };
        let norm = |w: Tensor| RmsNorm {
            weight: w,
            eps: cfg.rms_norm_eps,
        };
        let input_layernorm = norm(get(&format!("{p}.input_layernorm.weight"), &[hid])?);
        let post_attention_layernorm = norm(get(
            &format!("{p}.post_attention_layernorm.weight"),
            &[hid],
        )?);
        layers.push(DecoderLayer {
            self_attn,
            mlp,
            input_layernorm,
            post_attention_layernorm,
        });
    }
    let norm = RmsNorm {
        weight: get("model.norm.weight", &[hid])?,
        eps: cfg.rms_norm_eps,
    };
    let lm_head = if cfg.tie_word_embeddings {
        None
    } else {
        Some(get("lm_head.weight", &[cfg.vocab_size, hid])?)
    };
    Ok(LlamaForCausalLM {
        inv_freq: rope::inv_freq(&cfg),
        config: cfg,
        embed_tokens,
        layers,
        norm,
        lm_head,
        params,
        raw_config: serde_json::Value::Null,
        adapter: None,
        compute_dtype: candle_core::DType::F32,
    })
}
