//! The attention softmax with causal, padding and sliding-window masking
//! fused in, over scores laid out `(b, kvh, n_rep·t, tk)` (the query heads
//! sharing a KV head stacked along time), and its backward
//! `dS = scale · P ∘ (dP − Σⱼ Pⱼ dPⱼ)`.
//!
//! A query that may see no key gets a uniform row, as the graph path's
//! finite mask gives; such rows belong to padding and never reach a loss.
//!
//! On the CPU in f32 attention runs fused instead (`attention.rs`,
//! `attention_backward.rs`: the same masks, no `(b, h, t, t)` tensor); these
//! kernels serve the matmul path (bf16, and their primitive fallbacks on
//! other devices) and are the reference the fused kernels' tests compare with.

use candle_core::{DType, Result, Tensor, D};

use super::simd::exp_shifted;
use crate::engine::view::{fused, par_rows, F32View};

/// Which keys each query of a batch may see.
pub struct AttnMask {
    /// `(b, tk)`, non-zero for real tokens.
    pub attention_mask: Tensor,
    /// Per row of the batch, whether each key is a real token.
    key_valid: Vec<bool>,
    /// Per row of the batch, whether any key is padding.
    padded: Vec<bool>,
    pub sliding_window: Option<usize>,
    /// The additive mask of the primitive fallback, built once per forward
    /// (not once per layer) on first use.
    bias: std::sync::OnceLock<(usize, Tensor)>,
}

impl AttnMask {
    pub fn new(attention_mask: &Tensor, sliding_window: Option<usize>) -> Result<Self> {
        // Only the fused CPU kernel reads the mask on the host; on a GPU
        // reading it would stall the device once per forward.
        let key_valid = match attention_mask.device().is_cpu() {
            true => attention_mask
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v != 0.0)
                .collect(),
            false => Vec::new(),
        };
        let tk = attention_mask.dim(1)?.max(1);
        let padded = key_valid.chunks(tk).map(|r| r.contains(&false)).collect();
        Ok(Self {
            attention_mask: attention_mask.clone(),
            key_valid,
            padded,
            sliding_window,
            bias: std::sync::OnceLock::new(),
        })
    }

    /// The keys that causality and the window leave to query `qi`.
    pub(super) fn visible_range(&self, qi: usize, tk: usize) -> std::ops::Range<usize> {
        let lo = self
            .sliding_window
            .map_or(0, |w| (qi + 1).saturating_sub(w));
        lo..(qi + 1).min(tk)
    }

    /// Sets to `−∞` the entries of `row` (keys `k0..k0 + row.len()` of batch
    /// row `bi`, `tk` keys in all) that query `qi` may not see: what
    /// [`allowed`](Self::allowed) refuses, a row at a time — two fills and,
    /// only for a row with padding, a scan of the visible keys.
    pub(super) fn mask_row(&self, bi: usize, tk: usize, qi: usize, k0: usize, row: &mut [f32]) {
        let n = row.len();
        let vis = self.visible_range(qi, tk);
        let lo = vis.start.saturating_sub(k0).min(n);
        let hi = vis.end.saturating_sub(k0).clamp(lo, n);
        row[..lo].fill(f32::NEG_INFINITY);
        row[hi..].fill(f32::NEG_INFINITY);
        if self.padded[bi] {
            let valid = &self.key_valid[bi * tk + k0..][lo..hi];
            for (x, &v) in row[lo..hi].iter_mut().zip(valid) {
                if !v {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
    }

    /// Whether query `qi` (absolute position) of row `bi` may see key `j`.
    pub(super) fn allowed(&self, bi: usize, tk: usize, qi: usize, j: usize) -> bool {
        j <= qi && self.key_valid[bi * tk + j] && self.sliding_window.is_none_or(|w| qi - j < w)
    }
}

/// `P = softmax(scale · S + mask)`; `scores` `(b, kvh, n_rep·t, tk)` contiguous,
/// queries at the last `t` of `tk` positions.
pub fn causal_softmax(scores: &Tensor, mask: &AttnMask, t: usize, scale: f64) -> Result<Tensor> {
    if scores.dtype() != DType::F32 {
        // bf16 training: the softmax in f32, the probabilities in the scores' dtype.
        let p = causal_softmax(&scores.to_dtype(DType::F32)?, mask, t, scale)?;
        return p.to_dtype(scores.dtype());
    }
    let (b, kvh, rows, tk) = scores.dims4()?;
    if !fused(&[scores]) {
        let bias = match mask.bias.get() {
            Some((cached_t, b)) if *cached_t == t => b.clone(),
            _ => {
                let m = &mask.attention_mask;
                let b = crate::model::attention_bias_new_rows(m, t, mask.sliding_window)?;
                let _ = mask.bias.set((t, b.clone()));
                b
            }
        };
        let s = (scores * scale)?
            .reshape((b, kvh, rows / t, t, tk))?
            .broadcast_add(&bias)?;
        return crate::model::softmax_last_dim(&s)?.reshape((b, kvh, rows, tk));
    }
    let sv = F32View::new(scores)?;
    let ss = sv.get();
    let (per_batch, past, scale) = (kvh * rows, tk - t, scale as f32);
    let mut out = vec![0f32; ss.len()];
    par_rows(&mut out, tk, |r, o| {
        let (bi, qi) = (r / per_batch, past + r % t);
        let row = &ss[r * tk..(r + 1) * tk];
        // Only keys up to the query's own position can be visible.
        let keys = mask.visible_range(qi, tk);
        let mut max = f32::NEG_INFINITY;
        for j in keys.clone() {
            if mask.allowed(bi, tk, qi, j) {
                max = max.max(row[j] * scale);
            }
        }
        if max == f32::NEG_INFINITY {
            o.fill(1.0 / tk as f32);
            return;
        }
        for j in keys.clone() {
            o[j] = match mask.allowed(bi, tk, qi, j) {
                true => row[j] * scale,
                false => f32::NEG_INFINITY, // exp gives 0
            };
        }
        let sum = exp_shifted(&mut o[keys.clone()], max);
        o[keys].iter_mut().for_each(|v| *v /= sum);
    });
    Tensor::from_vec(out, (b, kvh, rows, tk), scores.device())
}

/// `dS` from `P` and `dP` (same shape, contiguous).
pub fn causal_softmax_backward(p: &Tensor, dp: &Tensor, scale: f64) -> Result<Tensor> {
    if p.dtype() != DType::F32 || dp.dtype() != DType::F32 {
        let (p32, dp32) = (p.to_dtype(DType::F32)?, dp.to_dtype(DType::F32)?);
        return causal_softmax_backward(&p32, &dp32, scale)?.to_dtype(dp.dtype());
    }
    if !fused(&[p, dp]) {
        let dot = (p * dp)?.sum_keepdim(D::Minus1)?;
        return (p * dp.broadcast_sub(&dot)?)? * scale;
    }
    let tk = p.dim(D::Minus1)?;
    let (pv, dv) = (F32View::new(p)?, F32View::new(dp)?);
    let (ps, ds) = (pv.get(), dv.get());
    let scale = scale as f32;
    let mut out = vec![0f32; ps.len()];
    par_rows(&mut out, tk, |r, o| {
        let (pr, dr) = (&ps[r * tk..(r + 1) * tk], &ds[r * tk..(r + 1) * tk]);
        let dot: f32 = pr.iter().zip(dr).map(|(a, b)| a * b).sum();
        for j in 0..tk {
            o[j] = scale * pr[j] * (dr[j] - dot);
        }
    });
    Tensor::from_vec(out, p.shape(), p.device())
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::AttnMask;

    /// `mask_row` keeps exactly the keys `allowed` allows, for every query,
    /// first key and row length, with padding (left, a hole in the middle,
    /// right, everything) and windows shorter and longer than the sequence.
    #[test]
    fn mask_row_keeps_what_allowed_allows() {
        let t = 12;
        let rows = [
            vec![1u8; t],
            [vec![0u8; 3], vec![1; 9]].concat(),
            [vec![1u8; 5], vec![0; 2], vec![1; 5]].concat(),
            [vec![1u8; 7], vec![0; 5]].concat(),
            vec![0u8; t],
        ];
        let am = Tensor::from_vec(rows.concat(), (rows.len(), t), &Device::Cpu).unwrap();
        for window in [None, Some(1), Some(4), Some(20)] {
            let mask = AttnMask::new(&am, window).unwrap();
            for (bi, qi, k0) in (0..rows.len())
                .flat_map(|b| (0..t).flat_map(move |q| (0..t).map(move |k| (b, q, k))))
            {
                for n in 0..=t - k0 {
                    let mut row = vec![1f32; n];
                    mask.mask_row(bi, t, qi, k0, &mut row);
                    for (j, &x) in row.iter().enumerate() {
                        let allowed = mask.allowed(bi, t, qi, k0 + j);
                        assert!(
                            (x == 1.0) == allowed && (allowed || x == f32::NEG_INFINITY),
                            "row {bi}, query {qi}, key {}, window {window:?}: {x}",
                            k0 + j
                        );
                    }
                }
            }
        }
    }
}
