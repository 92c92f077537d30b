//! IFT's relation propagation (paper Eq. 21, Algorithm 1 step 3), in the form
//! the authors' reference computes (see `docs/ift-method.md` §3).

use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// What is propagated along the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropagationItem {
    /// `c_t = ℓ_t / N` (the reference's default).
    Loss,
    /// `c_t = ℓ_t`.
    Logps,
    /// `c_t = m_t`: weights depend only on position.
    Mask,
}

/// Which way the discounted sum runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropagationSide {
    /// Loss-to-go `G_t = Σ_{k≥t} γ^{k−t} c_k`: later losses pile onto earlier positions.
    Left,
    /// Accumulated past `G_t = Σ_{k≤t} γ^{t−k} c_k`, inverted.
    Right,
}

/// How `G` becomes a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropagationNorm {
    L1,
    L2,
    Softmax,
    Log,
}

/// Relation-propagation options; the defaults are the paper's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PropagationParams {
    /// What is propagated; `loss` as in the paper's runs.
    pub item: PropagationItem,
    /// Direction of propagation; `left` as in the paper's runs.
    pub side: PropagationSide,
    /// Weight transform; `l1` as in the paper's runs.
    pub norm: PropagationNorm,
    /// Discount γ per position; 0.95 in the paper, 0 turns propagation off.
    pub gamma: f64,
}

impl Default for PropagationParams {
    fn default() -> Self {
        Self {
            item: PropagationItem::Loss,
            side: PropagationSide::Left,
            norm: PropagationNorm::L1,
            gamma: 0.95,
        }
    }
}

/// `(seq, seq)` matrix `M` with `(c M)_t = G_t`: `M[k,t] = γ^{k−t}` for `k ≥ t` (left)
/// or `γ^{t−k}` for `k ≤ t` (right), else 0. Built on `dev` from an index
/// range (in f64, then f32), so no `seq²` host loop or upload per call.
fn discount_matrix(
    seq: usize,
    gamma: f64,
    side: PropagationSide,
    dev: &candle_core::Device,
) -> Result<Tensor> {
    let idx = Tensor::arange(0u32, seq as u32, dev)?.to_dtype(DType::F64)?;
    let (k, t) = (idx.reshape((seq, 1))?, idx.reshape((1, seq))?);
    let gap = match side {
        PropagationSide::Left => k.broadcast_sub(&t)?,
        PropagationSide::Right => t.broadcast_sub(&k)?,
    };
    // γ^gap where gap ≥ 0 (where it is negative, exp may overflow: not selected).
    let powers = gap.affine(gamma.ln(), 0.0)?.exp()?;
    gap.ge(0f64)?
        .where_cond(&powers, &gap.zeros_like()?)?
        .to_dtype(DType::F32)
}

fn softmax_rows(x: &Tensor) -> Result<Tensor> {
    let e = x
        .broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?
        .exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Per-token weights `w` of spec §3, each sequence's weights averaging 1 over its
/// masked-in tokens (`w ← w · N / Σ w`). Not detached: gradient flows through `w`.
///
/// # Shapes
/// `token_losses` and `mask` (f32 0/1) are `(batch, seq)`; returns `(batch, seq)` f32.
pub fn propagation_weights(
    token_losses: &Tensor,
    mask: &Tensor,
    params: &PropagationParams,
) -> Result<Tensor> {
    let (losses, mask) = (
        token_losses.to_dtype(DType::F32)?,
        mask.to_dtype(DType::F32)?,
    );
    let n = mask.sum_keepdim(D::Minus1)?; // (b, 1)
    let raw = if params.gamma == 0.0 {
        mask.ones_like()?
    } else {
        let c = match params.item {
            PropagationItem::Loss => losses.broadcast_div(&n.maximum(1f32)?)?,
            PropagationItem::Logps => losses.clone(),
            PropagationItem::Mask => mask.clone(),
        };
        let m = discount_matrix(mask.dim(1)?, params.gamma, params.side, mask.device())?;
        let g = (c * &mask)?.matmul(&m)?;
        match params.side {
            PropagationSide::Left => {
                let g = (g * &mask)?;
                match params.norm {
                    PropagationNorm::L1 => g,
                    PropagationNorm::L2 => g.sqr()?,
                    PropagationNorm::Softmax => softmax_rows(&g)?,
                    PropagationNorm::Log => (g + 1.0)?.log()?,
                }
            }
            PropagationSide::Right => {
                let big = mask.affine(-1e6, 1e6)?; // 1e6 where masked out
                let g = ((g * &mask)? + big)?;
                let nonzero_min = g
                    .eq(0f32)?
                    .where_cond(&g.ones_like()?.affine(0.0, 1e6)?, &g)?
                    .min_all()?;
                let g = g.broadcast_add(&nonzero_min)?;
                match params.norm {
                    PropagationNorm::L1 => g.recip()?,
                    PropagationNorm::L2 => g.sqr()?.recip()?,
                    PropagationNorm::Softmax => softmax_rows(&g.recip()?)?,
                    PropagationNorm::Log => (g + 1.0)?.log()?.recip()?,
                }
            }
        }
    };
    let w = (raw * &mask)?;
    let total = w.sum_keepdim(D::Minus1)?.maximum(1e-12f32)?;
    w.broadcast_mul(&n.broadcast_div(&total)?)
}

/// `L = mean_b Σ_t w_t ℓ_t / N_b` (spec §3): with all-ones weights, SFT's per-sequence token mean.
///
/// # Shapes
/// All three inputs are `(batch, seq)`; returns a scalar.
pub fn weighted_loss(token_losses: &Tensor, mask: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?;
    let n = mask.sum_keepdim(D::Minus1)?.maximum(1f32)?;
    let per_seq =
        ((token_losses.to_dtype(DType::F32)? * weights)? * &mask)?.sum_keepdim(D::Minus1)?;
    per_seq.broadcast_div(&n)?.mean_all()
}

#[cfg(test)]
#[path = "weights_tests.rs"]
mod tests;
