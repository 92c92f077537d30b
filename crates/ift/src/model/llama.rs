//! The decoder shared by the Llama family (Llama 2/3, Mistral, Qwen2,
//! SmolLM2): RMSNorm, grouped-query attention with `rotate_half` RoPE,
//! SwiGLU, tied or untied `lm_head`.

use candle_core::{Result, Tensor};

use super::attention::{attention_bias, Attention};
use super::config::LlamaConfig;
use super::layers::{Linear, Mlp, RmsNorm, Weight};
use super::params::Parameters;
use super::rope;
use super::LoraConfig;

/// What [`LlamaForCausalLM::forward`] reads: token ids, or input embeddings
/// (IFT feeds mixed embeddings).
#[derive(Debug, Clone, Copy)]
pub enum ModelInput<'a> {
    /// `(b, t)` token ids, `u32`.
    Ids(&'a Tensor),
    /// `(b, t, hidden)` input embeddings, `f32`.
    Embeds(&'a Tensor),
}

/// One transformer block, pre-norm.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    /// The layer's seven projections: q, k, v, o, gate, up, down.
    pub fn projections(&self) -> [&crate::model::Linear; 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            &a.q_proj,
            &a.k_proj,
            &a.v_proj,
            &a.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ]
    }
}

/// A causal language model of the Llama family.
#[derive(Debug, Clone)]
pub struct LlamaForCausalLM {
    pub config: LlamaConfig,
    pub(crate) embed_tokens: Tensor,
    pub(crate) layers: Vec<DecoderLayer>,
    pub(crate) norm: RmsNorm,
    /// `None` when the head is tied to `embed_tokens`.
    pub(crate) lm_head: Option<Tensor>,
    pub(crate) inv_freq: Vec<f32>,
    pub(crate) params: Parameters,
    /// `config.json` as read (or as generated for a random model), kept so a
    /// saved checkpoint carries every key the original had.
    pub(crate) raw_config: serde_json::Value,
    /// The LoRA adapter's settings when the projections carry one (`lora.rs`).
    pub(crate) adapter: Option<LoraConfig>,
    /// The dtype the explicit engine multiplies in (`train.dtype`): f32, or
    /// bf16 with these f32 weights as the master copy (`engine/mod.rs`).
    pub(crate) compute_dtype: candle_core::DType,
}

impl LlamaForCausalLM {
    /// Full-sequence forward pass; pure (no cache, no state).
    ///
    /// # Shapes
    /// `input`: ids `(b, t)` or embeddings `(b, t, hidden)`; `attention_mask`:
    /// `(b, t)`, non-zero for real tokens. Returns logits `(b, t, vocab)`.
    /// Causal masking is always combined with the padding mask.
    pub fn forward(&self, input: ModelInput<'_>, attention_mask: &Tensor) -> Result<Tensor> {
        let mut x = match input {
            ModelInput::Ids(ids) => self.embed(ids)?,
            ModelInput::Embeds(e) => e.clone(),
        };
        let (_, t, _) = x.dims3()?;
        let (cos, sin) = rope::cos_sin(&self.inv_freq, t, x.device())?;
        let bias = attention_bias(attention_mask, self.config.sliding_window)?;
        for layer in &self.layers {
            let h = layer.input_layernorm.forward(&x)?;
            x = (x + layer.self_attn.forward(&h, &cos, &sin, &bias)?)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            x = (x + layer.mlp.forward(&h)?)?;
        }
        let x = self.norm.forward(&x)?;
        self.head().forward(&x)
    }

    /// The vocabulary head as a layer; frozen (no weight gradient) when the
    /// model carries an adapter, since then nothing of the base trains.
    pub(crate) fn head(&self) -> Linear {
        match self.adapter {
            Some(_) => Linear {
                weight: Weight::Frozen(self.lm_head().clone()),
                bias: None,
                lora: None,
            },
            None => Linear::dense(self.lm_head().clone(), None),
        }
    }

    /// Input embeddings `(b, t, hidden)` of token ids `(b, t)`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        self.embed_tokens
            .index_select(&flat, 0)?
            .reshape((b, t, self.config.hidden_size))
    }

    /// The input embedding matrix `(vocab, hidden)`.
    pub fn embed_tokens(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// The output projection `(vocab, hidden)`: `embed_tokens` when tied.
    pub fn lm_head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// The same model whose explicit-engine passes multiply in `dtype`
    /// (f32 or bf16; `train.dtype`), the weights staying as they are.
    pub fn with_compute_dtype(&self, dtype: candle_core::DType) -> Self {
        LlamaForCausalLM {
            compute_dtype: dtype,
            ..self.clone()
        }
    }

    /// The dtype the explicit engine multiplies in.
    pub fn compute_dtype(&self) -> candle_core::DType {
        self.compute_dtype
    }

    /// [`Self::detached`] with each attention's Q/K/V fused into one
    /// projection (`Attention::with_fused_qkv`), for the key/value-cache
    /// paths (choice scoring, generation). Unlike `detached`, the fused
    /// weights are copies: build it for one evaluation, not across updates.
    pub fn for_inference(&self) -> Result<Self> {
        let mut model = self.detached();
        for layer in &mut model.layers {
            layer.self_attn = layer.self_attn.with_fused_qkv()?;
        }
        Ok(model)
    }

    /// Every parameter by Hugging Face name, and the trainable ones.
    pub fn parameters(&self) -> &Parameters {
        &self.params
    }
}

impl LlamaForCausalLM {
    /// A view of the same weights that records no autograd graph: for
    /// evaluation, generation and IFT's no-gradient prediction pass. Shares
    /// storage with `self`, so it sees every optimiser update.
    pub fn detached(&self) -> Self {
        let lin = |l: &Linear| Linear {
            weight: match &l.weight {
                Weight::Dense(w) => Weight::Dense(w.detach()),
                q => q.clone(),
            },
            bias: l.bias.as_ref().map(Tensor::detach),
            lora: l.lora.as_ref().map(|a| a.detached()),
        };
        let norm = |n: &RmsNorm| RmsNorm {
            weight: n.weight.detach(),
            eps: n.eps,
        };
        LlamaForCausalLM {
            embed_tokens: self.embed_tokens.detach(),
            lm_head: self.lm_head.as_ref().map(Tensor::detach),
            params: Parameters::default(),
            ..self.map_modules(&lin, &norm)
        }
    }

    /// A copy whose every projection went through `lin` and every norm
    /// through `norm`; everything else is shared with `self`.
    pub(crate) fn map_modules(
        &self,
        lin: &dyn Fn(&Linear) -> Linear,
        norm: &dyn Fn(&RmsNorm) -> RmsNorm,
    ) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| DecoderLayer {
                self_attn: Attention {
                    q_proj: lin(&l.self_attn.q_proj),
                    k_proj: lin(&l.self_attn.k_proj),
                    v_proj: lin(&l.self_attn.v_proj),
                    o_proj: lin(&l.self_attn.o_proj),
                    // Built from the projections it replaces: never carried over.
                    fused_qkv: None,
                    ..l.self_attn.clone()
                },
                mlp: Mlp {
                    gate_proj: lin(&l.mlp.gate_proj),
                    up_proj: lin(&l.mlp.up_proj),
                    down_proj: lin(&l.mlp.down_proj),
                },
                input_layernorm: norm(&l.input_layernorm),
                post_attention_layernorm: norm(&l.post_attention_layernorm),
            })
            .collect();
        LlamaForCausalLM {
            layers,
            norm: norm(&self.norm),
            ..self.clone()
        }
    }
}
