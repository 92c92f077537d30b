//! LoRA on the decoder's projections, computed as PEFT's `lora.Linear` does:
//! `y = base(x) + scaling · B(A(dropout(x)))`, with `A` `(r, in)` and `B`
//! `(out, r)` under PEFT's names (`…q_proj.lora_A.weight`). The base stays
//! frozen; switching the adapter off (`without_adapter`) gives the base model
//! back without a second copy of its weights, which is what preference
//! objectives use as their reference.

use std::cell::Cell;

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::layers::{Linear, Weight};
use super::llama::LlamaForCausalLM;
use super::params::Parameters;
use super::LoraConfig;

/// One projection's adapter.
#[derive(Debug, Clone)]
pub struct Lora {
    /// `(r, in)`: PEFT's `lora_A.weight`.
    pub lora_a: Tensor,
    /// `(out, r)`: PEFT's `lora_B.weight`.
    pub lora_b: Tensor,
    /// PEFT's `scaling` (`alpha / r`, or `alpha / √r` with rsLoRA).
    pub scaling: f64,
    /// Probability of dropping an input feature while training.
    pub dropout: f64,
    /// Seed of this forward's dropout mask; `None` (evaluation): no dropout.
    pub dropout_seed: Option<u64>,
}

impl Lora {
    /// `scaling · B A dropout(x)` for `x` `(rows, in)`; returns `(rows, out)`.
    pub(crate) fn delta(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.dropped(x)?.matmul(&self.lora_a.t()?)?; // (rows, r)
        h.matmul(&self.lora_b.t()?)? * self.scaling
    }

    /// `x` with this forward's dropout applied (itself without dropout).
    pub(crate) fn dropped(&self, x: &Tensor) -> Result<Tensor> {
        match self.dropout_mask(x)? {
            Some(m) => x * m.to_dtype(x.dtype())?,
            None => Ok(x.clone()),
        }
    }

    /// This forward's inverted-dropout mask for an input shaped like `x`
    /// (`0` or `1 / (1 − p)` per element), or `None` without dropout. A pure
    /// function of the seed and each element's index, so a step's masks
    /// depend on (seed, step, micro-batch) alone, resuming is exact, and the
    /// explicit engine's backward draws the same mask again instead of
    /// keeping it.
    pub fn dropout_mask(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let (Some(seed), true) = (self.dropout_seed, self.dropout > 0.0) else {
            return Ok(None);
        };
        let threshold = (self.dropout * u32::MAX as f64) as u32;
        let keep = (1.0 / (1.0 - self.dropout)) as f32;
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            // The same hash drawn on the device: nothing uploaded per projection.
            let m = crate::engine::kernels::cuda::dropout_mask(x, seed, threshold, keep)?;
            return Ok(Some(m));
        }
        let mut mask = vec![0f32; x.elem_count()];
        const CHUNK: usize = 1 << 14;
        mask.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (j, m) in chunk.iter_mut().enumerate() {
                    let draw = (mix(seed, (c * CHUNK + j) as u64) >> 32) as u32;
                    *m = if draw >= threshold { keep } else { 0.0 };
                }
            });
        Ok(Some(Tensor::from_vec(mask, x.shape(), x.device())?))
    }

    pub(crate) fn detached(&self) -> Lora {
        Lora {
            lora_a: self.lora_a.detach(),
            lora_b: self.lora_b.detach(),
            ..self.clone()
        }
    }
}

/// A seed mixed with an index (splitmix64's finaliser), so neighbouring
/// layers and micro-batches get unrelated masks.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// PEFT's saved name of an adapter tensor: `base_model.model.<module>.lora_A.weight`.
pub fn peft_name(module: &str, matrix: &str) -> String {
    format!("base_model.model.{module}.{matrix}.weight")
}

impl LlamaForCausalLM {
    /// Every decoder projection with its module name
    /// (`model.layers.0.self_attn.q_proj`) and short name (`q_proj`).
    pub(crate) fn projections_mut(&mut self) -> Vec<(String, &'static str, &mut Linear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let (a, m) = (&mut l.self_attn, &mut l.mlp);
            let attn = [("q_proj", &mut a.q_proj), ("k_proj", &mut a.k_proj)];
            let attn2 = [("v_proj", &mut a.v_proj), ("o_proj", &mut a.o_proj)];
            for (short, lin) in attn.into_iter().chain(attn2) {
                out.push((format!("model.layers.{i}.self_attn.{short}"), short, lin));
            }
            let mlp = [
                ("gate_proj", &mut m.gate_proj),
                ("up_proj", &mut m.up_proj),
                ("down_proj", &mut m.down_proj),
            ];
            for (short, lin) in mlp {
                out.push((format!("model.layers.{i}.mlp.{short}"), short, lin));
            }
        }
        out
    }

    /// Adds a LoRA adapter to every projection `config` targets, its `A` and
    /// `B` from `source(peft_name, shape)`; with `trainable` they become the
    /// model's only trainable parameters (the base must be frozen).
    pub fn attach_lora(
        &mut self,
        config: &LoraConfig,
        source: &mut dyn FnMut(&str, &[usize]) -> crate::Result<Tensor>,
        trainable: bool,
    ) -> crate::Result<()> {
        let mut params = std::mem::take(&mut self.params);
        if !params.vars().is_empty() {
            return Err(crate::Error::Train(
                "a LoRA adapter needs a frozen base (load it with Trainable::None)".into(),
            ));
        }
        for (module, short, lin) in self.projections_mut() {
            // The whole base is frozen: its matmuls skip the weight gradient.
            if let Weight::Dense(w) = &lin.weight {
                lin.weight = Weight::Frozen(w.clone());
            }
            if !config.targets(short) {
                continue;
            }
            let (out_dim, in_dim) = match &lin.weight {
                Weight::Dense(w) | Weight::Frozen(w) => w.dims2()?,
                Weight::Quantized(q) => q.dims(),
            };
            let mut get = |matrix: &str, shape: [usize; 2]| -> crate::Result<Tensor> {
                let name = peft_name(&module, matrix);
                let t = source(&name, &shape)?;
                Ok(match trainable {
                    true => params.add_var(&name, t)?,
                    false => t,
                })
            };
            lin.lora = Some(Lora {
                lora_a: get("lora_A", [config.r, in_dim])?,
                lora_b: get("lora_B", [out_dim, config.r])?,
                scaling: config.scaling(),
                dropout: config.dropout,
                dropout_seed: None,
            });
        }
        self.params = params;
        self.adapter = Some(config.clone());
        Ok(())
    }

    /// The adapter's settings, if the model carries one.
    pub fn adapter(&self) -> Option<&LoraConfig> {
        self.adapter.as_ref()
    }

    /// The adapter tensors by PEFT name, in model order (empty without one).
    pub fn adapter_tensors(&self) -> Vec<(String, Tensor)> {
        let mut model = self.clone();
        let mut out = Vec::new();
        for (module, _, lin) in model.projections_mut() {
            if let Some(l) = &lin.lora {
                out.push((peft_name(&module, "lora_A"), l.lora_a.detach()));
                out.push((peft_name(&module, "lora_B"), l.lora_b.detach()));
            }
        }
        out
    }

    /// The base model with the adapter switched off: the same (shared) base
    /// weights, no adapter, no trainable parameters. No copy, no disk read.
    pub fn without_adapter(&self) -> Self {
        let lin = |l: &Linear| Linear {
            lora: None,
            ..l.clone()
        };
        LlamaForCausalLM {
            adapter: None,
            params: Parameters::default(),
            ..self.map_modules(&lin, &|n| n.clone())
        }
    }

    /// The same model with LoRA dropout on, its masks drawn from `key` (one
    /// key per training micro-batch). Without an adapter or dropout: a plain copy.
    pub fn with_dropout(&self, key: u64) -> Self {
        let index = Cell::new(0u64);
        let lin = |l: &Linear| {
            let mut l = l.clone();
            if let Some(a) = &mut l.lora {
                a.dropout_seed = Some(mix(key, index.get()));
                index.set(index.get() + 1);
            }
            l
        };
        self.map_modules(&lin, &|n| n.clone())
    }

    /// [`Self::with_dropout`] for micro-batch `index` of a training step
    /// (`training`); a plain copy otherwise or without an adapter.
    pub fn with_dropout_if(&self, training: bool, seed: u64, step: u64, index: usize) -> Self {
        match training && self.adapter.as_ref().is_some_and(|a| a.dropout > 0.0) {
            true => self.with_dropout(mix(mix(seed, step), index as u64)),
            false => self.clone(),
        }
    }

    /// The adapter merged into the base weights (`W + scaling · B A`), as
    /// PEFT's `merge_and_unload`: a plain model whose `save_pretrained` writes
    /// a Hugging Face directory. Needs a dense (not quantised) base.
    pub fn merged(&self) -> crate::Result<Self> {
        let mut model = self.clone();
        let mut params = model.params.frozen();
        for (module, _, lin) in model.projections_mut() {
            let Some(l) = lin.lora.take() else { continue };
            let (Weight::Dense(w) | Weight::Frozen(w)) = &lin.weight else {
                return Err(crate::Error::Train(format!(
                    "{module}: cannot merge an adapter into a quantised base; load the base with model.quantize = \"none\""
                )));
            };
            let delta = (l.lora_b.detach().matmul(&l.lora_a.detach())? * l.scaling)?;
            let merged = (w.detach() + delta)?;
            params.replace(&format!("{module}.weight"), merged.clone());
            lin.weight = Weight::Dense(merged);
        }
        for (_, _, lin) in model.projections_mut() {
            if let Weight::Frozen(w) = &lin.weight {
                lin.weight = Weight::Dense(w.clone());
            }
        }
        model.params = params;
        model.adapter = None;
        Ok(model)
    }
}
