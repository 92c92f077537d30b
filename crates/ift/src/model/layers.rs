//! The small building blocks of the decoder, all differentiable.
//!
//! candle-nn's fused `rms_norm`, `RmsNorm` and `softmax_last_dim` record no
//! backward pass (upstream issue #2168), so these are written with primitive
//! ops that do.

use candle_core::{Result, Tensor, D};

use super::lora::Lora;
use super::quantized::QuantizedWeight;

/// A projection's frozen or trainable base matrix, Hugging Face's `(out, in)`.
#[derive(Debug, Clone)]
pub enum Weight {
    /// An f32 tensor (trainable when it is a `Var`'s).
    Dense(Tensor),
    /// A frozen f32 tensor whose matmul records only the input gradient
    /// (`frozen.rs`): every base projection of a model with an adapter.
    Frozen(Tensor),
    /// A frozen quantised matrix (`model.quantize`, QLoRA-style; `quantized.rs`).
    Quantized(QuantizedWeight),
}

/// A dense layer `y = x Wᵀ + b` with Hugging Face's `(out, in)` weight layout,
/// plus an optional LoRA adapter (`lora.rs`) added to its output.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Tensor>,
    /// `None` for a plain layer (every layer without `[adapter]`).
    pub lora: Option<Lora>,
}

impl Linear {
    /// A plain dense layer.
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight: Weight::Dense(weight),
            bias,
            lora: None,
        }
    }

    /// `x`: `(..., in)` → `(..., out)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (in_dim, lead) = dims
            .split_last()
            .expect("Linear input has at least one dim");
        let rows: usize = lead.iter().product();
        let x = x.reshape((rows, *in_dim))?;
        let y = match &self.weight {
            Weight::Dense(w) => x.matmul(&w.t()?)?,
            Weight::Frozen(w) => super::frozen::frozen_matmul(&x, w)?,
            Weight::Quantized(q) => q.forward(&x)?,
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let y = match &self.lora {
            Some(l) => (y + l.delta(&x)?)?,
            None => y,
        };
        let mut out = lead.to_vec();
        out.push(y.dim(1)?);
        y.reshape(out)
    }

    /// The dense base weight (trainable or frozen); `None` when it is quantised.
    pub fn dense_weight(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Dense(w) | Weight::Frozen(w) => Some(w),
            Weight::Quantized(_) => None,
        }
    }
}

/// RMSNorm: `x / sqrt(mean(x²) + eps) * weight`, computed in f32.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
        let inv_rms = (mean_sq + self.eps)?.sqrt()?.recip()?;
        x.broadcast_mul(&inv_rms)?.broadcast_mul(&self.weight)
    }
}

/// Softmax over the last dimension. The max is subtracted for stability and
/// detached: it cancels in the result, so it needs no gradient.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}
