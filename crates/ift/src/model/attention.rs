//! Grouped-query self-attention with causal + padding masking.

use candle_core::{DType, Result, Tensor};

use super::layers::{softmax_last_dim, Linear};
use super::rope::apply_rotary;

/// Large negative bias for masked scores. Finite (unlike `-inf`) so a row
/// with every key masked yields a uniform softmax instead of NaN.
const MASKED: f64 = -1e30;

/// One attention block with Hugging Face's `q_proj`/`k_proj`/`v_proj`/`o_proj`.
#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl Attention {
    /// # Shapes
    /// `x`: `(b, t, hidden)`; `cos`/`sin`: `(t, head_dim)`; `bias`: additive
    /// mask `(b, 1, 1, t, t)` from [`attention_bias`]. Returns `(b, t, hidden)`.
    pub fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let heads = |p: &Linear, n: usize| -> Result<Tensor> {
            p.forward(x)?
                .reshape((b, t, n, d))?
                .transpose(1, 2)?
                .contiguous() // (b, n, t, d)
        };
        let q = apply_rotary(&heads(&self.q_proj, h)?, cos, sin)?;
        let k = apply_rotary(&heads(&self.k_proj, kvh)?, cos, sin)?;
        let v = heads(&self.v_proj, kvh)?;
        // Grouped-query attention without copying K and V: query head i uses
        // KV head i / n_rep (HF's repeat_kv), so the n_rep query heads that
        // share a KV head are stacked along the time axis.
        let n_rep = h / kvh;
        let q = q.reshape((b, kvh, n_rep * t, d))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?; // (b, kvh, n_rep*t, t)
        let scores = scores.reshape((b, kvh, n_rep, t, t))?.broadcast_add(bias)?;
        let probs = softmax_last_dim(&scores)?.reshape((b, kvh, n_rep * t, t))?;
        let out = probs.matmul(&v)?; // (b, kvh, n_rep*t, d)
        let out = out
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o_proj.forward(&out)
    }
}

/// The additive attention bias `(b, 1, 1, t, t)`: 0 where query `i` may see
/// key `j` (`j ≤ i`, key not padding, within the sliding window if any), a
/// large negative number elsewhere. `attention_mask` is `(b, t)`, 1 for real
/// tokens and 0 for padding, in any numeric dtype.
pub fn attention_bias(attention_mask: &Tensor, sliding_window: Option<usize>) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let device = attention_mask.device();
    let idx = Tensor::arange(0i64, t as i64, device)?;
    let query = idx.reshape((t, 1))?.broadcast_as((t, t))?;
    let key = idx.reshape((1, t))?.broadcast_as((t, t))?;
    let mut allowed = key.le(&query)?;
    if let Some(w) = sliding_window {
        let offset = (query.to_dtype(DType::F64)? - w as f64)?;
        allowed = allowed.mul(&key.to_dtype(DType::F64)?.gt(&offset)?)?;
    }
    let allowed = allowed.to_dtype(DType::F32)?.reshape((1, t, t))?;
    let keys = attention_mask
        .to_dtype(DType::F32)?
        .ne(0f64)?
        .to_dtype(DType::F32)?
        .reshape((b, 1, t))?;
    let allowed = allowed.broadcast_mul(&keys)?; // (b, t, t)
                                                 // allowed (1) → 0, masked (0) → MASKED
    ((allowed - 1.0)? * -MASKED)?.reshape((b, 1, 1, t, t))
}
