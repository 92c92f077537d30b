//! Grouped-query self-attention with causal + padding masking.

use candle_core::{DType, Result, Tensor};

use super::layers::{softmax_last_dim, Linear, Weight};
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
    /// `q_proj`, `k_proj` and `v_proj` as one projection (their weights and
    /// biases concatenated along the output), used instead of the three when
    /// present: only in an inference snapshot ([`Attention::with_fused_qkv`]).
    pub fused_qkv: Option<Linear>,
}

impl Attention {
    /// # Shapes
    /// `x`: `(b, t, hidden)`; `cos`/`sin`: `(t, head_dim)`; `bias`: additive
    /// mask `(b, 1, 1, t, t)` from [`attention_bias`]. Returns `(b, t, hidden)`.
    pub fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x, cos, sin)?;
        self.attend(&q, &k, &v, bias)
    }

    /// The incremental path: this step's keys and values are appended to
    /// `cache` (one layer's `(k, v)`) and the new queries attend to all of them.
    ///
    /// # Shapes
    /// `x`: `(b, t_new, hidden)`; `cos`/`sin`: `(b, 1, t_new, head_dim)` (per-row
    /// positions); `bias`: `(b, 1, 1, t_new, t_past + t_new)`.
    pub fn forward_cached(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        bias: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (q, k, v) = self.qkv(x, cos, sin)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        self.attend(&q, &k, &v, bias)
    }

    /// Projections and rotation: q `(b, h, t, d)`, k and v `(b, kvh, t, d)`.
    fn qkv(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (q, k, v) = match &self.fused_qkv {
            Some(fused) => {
                // One matmul, then each part's heads: (b, t, h + 2 kvh, d).
                let y = fused.forward(x)?.reshape((b, t, h + 2 * kvh, d))?;
                let part = |start: usize, n: usize| -> Result<Tensor> {
                    y.narrow(2, start, n)?.transpose(1, 2)?.contiguous() // (b, n, t, d)
                };
                (part(0, h)?, part(h, kvh)?, part(h + kvh, kvh)?)
            }
            None => {
                let heads = |p: &Linear, n: usize| -> Result<Tensor> {
                    p.forward(x)?
                        .reshape((b, t, n, d))?
                        .transpose(1, 2)?
                        .contiguous() // (b, n, t, d)
                };
                (
                    heads(&self.q_proj, h)?,
                    heads(&self.k_proj, kvh)?,
                    heads(&self.v_proj, kvh)?,
                )
            }
        };
        Ok((apply_rotary(&q, cos, sin)?, apply_rotary(&k, cos, sin)?, v))
    }

    /// This block with Q/K/V fused into one projection when all three are
    /// plain dense layers (no adapter, not quantised): at the few rows a
    /// cached step multiplies, the narrow K and V products ran at a fifth to
    /// a third of the fused one's speed (`ift bench smollm2 matmul --batch 1
    /// --seq 64`, `--seq 128`). A snapshot: the fused weight is a copy, blind to later updates.
    pub fn with_fused_qkv(&self) -> Result<Attention> {
        let parts = [&self.q_proj, &self.k_proj, &self.v_proj];
        let dense: Option<Vec<&Tensor>> = parts
            .iter()
            .map(|p| match (&p.weight, &p.lora) {
                (Weight::Dense(w) | Weight::Frozen(w), None) => Some(w),
                _ => None,
            })
            .collect();
        let Some(weights) = dense else {
            return Ok(self.clone());
        };
        let bias = match parts.iter().any(|p| p.bias.is_some()) {
            false => None,
            true => {
                let each = parts
                    .iter()
                    .zip(&weights)
                    .map(|(p, w)| match &p.bias {
                        Some(b) => Ok(b.detach()),
                        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(Tensor::cat(&each, 0)?)
            }
        };
        let weight = Tensor::cat(&weights, 0)?.detach();
        Ok(Attention {
            fused_qkv: Some(Linear::dense(weight, bias)),
            ..self.clone()
        })
    }

    /// Scaled dot-product attention of q `(b, h, tq, d)` over k, v
    /// `(b, kvh, tk, d)` with `bias` `(b, 1, 1, tq, tk)`; returns `(b, tq, hidden)`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, _, t, d) = q.dims4()?;
        let tk = k.dim(2)?;
        let (h, kvh) = (self.num_heads, self.num_kv_heads);
        // Grouped-query attention without copying K and V: query head i uses
        // KV head i / n_rep (HF's repeat_kv), so the n_rep query heads that
        // share a KV head are stacked along the time axis.
        let n_rep = h / kvh;
        let q = q.reshape((b, kvh, n_rep * t, d))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?; // (b, kvh, n_rep*t, tk)
        let scores = scores
            .reshape((b, kvh, n_rep, t, tk))?
            .broadcast_add(bias)?;
        let probs = softmax_last_dim(&scores)?.reshape((b, kvh, n_rep * t, tk))?;
        let out = probs.matmul(&v.contiguous()?)?; // (b, kvh, n_rep*t, d)
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
    let t = attention_mask.dim(1)?;
    attention_bias_new_rows(attention_mask, t, sliding_window)
}

/// The bias `(b, 1, 1, t_new, t)` for the last `t_new` of `t` positions
/// (the rows a cached step computes): query `i` sits at index `t - t_new + i`
/// and sees every earlier cached key by the same causal/padding/window rules.
pub fn attention_bias_new_rows(
    attention_mask: &Tensor,
    t_new: usize,
    sliding_window: Option<usize>,
) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let device = attention_mask.device();
    let past = (t - t_new) as i64;
    let query = Tensor::arange(past, t as i64, device)?
        .reshape((t_new, 1))?
        .broadcast_as((t_new, t))?;
    let key = Tensor::arange(0i64, t as i64, device)?
        .reshape((1, t))?
        .broadcast_as((t_new, t))?;
    let mut allowed = key.le(&query)?;
    if let Some(w) = sliding_window {
        let offset = (query.to_dtype(DType::F64)? - w as f64)?;
        allowed = allowed.mul(&key.to_dtype(DType::F64)?.gt(&offset)?)?;
    }
    let allowed = allowed.to_dtype(DType::F32)?.reshape((1, t_new, t))?;
    let keys = attention_mask
        .to_dtype(DType::F32)?
        .ne(0f64)?
        .to_dtype(DType::F32)?
        .reshape((b, 1, t))?;
    let allowed = allowed.broadcast_mul(&keys)?; // (b, t_new, t)
                                                 // allowed (1) → 0, masked (0) → MASKED
    ((allowed - 1.0)? * -MASKED)?.reshape((b, 1, 1, t_new, t))
}
