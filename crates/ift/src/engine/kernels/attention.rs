//! Causal attention fused for the CPU: `O = softmax(scale·QKᵀ + mask)·V` a
//! block of queries at a time, so the `(b, h, t, t)` scores never exist. A
//! training forward also keeps each query's log-sum-exp, from which
//! [`attention_backward`](super::attention_backward::attention_backward)
//! recomputes the probabilities block by block (FlashAttention's scheme).
//!
//! Each block of [`QUERY_BLOCK`] queries multiplies only the keys causality
//! (and the sliding window) leaves it: about half of the matmul work, and no
//! scores buffer larger than `QUERY_BLOCK × t` per thread. Evaluating
//! 1,300-token sequences at batch 8 used to allocate and free a 0.5 GB scores
//! tensor several times per layer (most of `ift eval`'s system time); a
//! training forward kept `P`, `(b, h, t, t)` per layer, for its backward.
//!
//! Masking is the softmax kernel's (`AttnMask::mask_row`), and a query that may
//! see no key gets the same uniform row over all keys.

use std::cell::RefCell;

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::block_gemm::{gemm_into, gemm_scaled_into, Mat};
use super::simd::{exp_shifted, max};
use super::softmax::AttnMask;
use crate::engine::view::{fused, F32View};

/// Queries per block: the scores buffer is `QUERY_BLOCK × keys`.
pub const QUERY_BLOCK: usize = 64;

thread_local! {
    pub(super) static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The fused forward's output: `O` `(b, kvh, n_rep·t, d)` and, when asked
/// for, each query row's `lse = log Σⱼ exp(scale·sⱼ)` over its visible keys
/// `(b, kvh, n_rep·t)` (`−∞` for a query that sees no key).
pub struct Attended {
    pub o: Tensor,
    pub lse: Option<Tensor>,
}

/// Checks `q` `(b, kvh, n_rep·t, d)` (laid out like the scores of
/// `causal_softmax`: the query heads sharing a KV head stacked along time)
/// against `k`, `v` `(b, kvh, t, d)`; returns `(b, kvh, rows, d, t)`.
pub(super) fn shapes(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
) -> Result<(usize, usize, usize, usize, usize)> {
    let (b, kvh, rows, d) = q.dims4()?;
    let t = k.dim(2)?;
    if rows % t != 0 || k.dims4()? != (b, kvh, t, d) || v.dims4()? != (b, kvh, t, d) {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?} do not match",
            q.dims(),
            k.dims(),
            v.dims()
        );
    }
    Ok((b, kvh, rows, d, t))
}

/// The fused attention forward, with the log-sum-exps when `keep_lse` (a
/// training forward). `None` where the fused CPU kernel does not apply (other
/// devices, bf16): the caller takes the matmul path.
pub fn attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttnMask,
    scale: f64,
    keep_lse: bool,
) -> Result<Option<Attended>> {
    if !fused(&[q, k, v]) {
        return Ok(None);
    }
    let (b, kvh, rows, d, t) = shapes(q, k, v)?;
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let (qv, kv, vv) = (F32View::new(&q)?, F32View::new(&k)?, F32View::new(&v)?);
    let (qs, ks, vs) = (qv.get(), kv.get(), vv.get());
    let scale = scale as f32;
    let mut out = vec![0f32; qs.len()];
    let mut lse = vec![0f32; qs.len() / d];
    // Tasks: each query head's `t` rows (head `h` of KV group `h / n_rep`,
    // batch row `h / n_rep / kvh`), then blocks of queries; every block
    // writes its own rows of `out` and `lse`.
    let n_rep = rows / t;
    out.par_chunks_mut(t * d)
        .zip(lse.par_chunks_mut(t))
        .enumerate()
        .for_each(|(h, (oh, lh))| {
            let g = h / n_rep;
            let (k, v) = (
                &ks[g * t * d..(g + 1) * t * d],
                &vs[g * t * d..(g + 1) * t * d],
            );
            oh.par_chunks_mut(QUERY_BLOCK * d)
                .zip(lh.par_chunks_mut(QUERY_BLOCK))
                .enumerate()
                .for_each(|(bi, (ob, lb))| {
                    let q0 = bi * QUERY_BLOCK;
                    let block = Block {
                        batch: g / kvh,
                        q0,
                        q: &qs[(h * t + q0) * d..],
                        k,
                        v,
                        t,
                        d,
                    };
                    SCORES.with(|s| block.forward(mask, scale, &mut s.borrow_mut(), ob, lb));
                })
        });
    let o = Tensor::from_vec(out, (b, kvh, rows, d), q.device())?;
    let lse = match keep_lse {
        true => Some(Tensor::from_vec(lse, (b, kvh, rows), q.device())?),
        false => None,
    };
    Ok(Some(Attended { o, lse }))
}

/// One block of queries (positions `q0..`) against its group's keys and values.
pub(super) struct Block<'a> {
    pub batch: usize,
    pub q0: usize,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub t: usize,
    pub d: usize,
}

impl Block<'_> {
    /// The keys any of `nq` queries from `q0` may see: from the first query's
    /// window start to the last query's own position.
    fn keys(&self, mask: &AttnMask, nq: usize) -> std::ops::Range<usize> {
        mask.visible_range(self.q0, self.t).start..(self.q0 + nq).min(self.t)
    }

    /// `s ← scale·Q·Kᵀ` over [`keys`](Self::keys) (`nq × nk`), the masked
    /// keys `−∞`; returns those keys.
    pub fn scores(
        &self,
        mask: &AttnMask,
        scale: f32,
        nq: usize,
        s: &mut Vec<f32>,
    ) -> std::ops::Range<usize> {
        let (t, d) = (self.t, self.d);
        let keys = self.keys(mask, nq);
        let nk = keys.len();
        scratch(s, nq * nk);
        let k = &self.k[keys.start * d..keys.end * d];
        // SAFETY: each extent and stride describes a matrix inside the slice
        // it comes from (q: nq rows of d, k: nk × d, s: nq × nk).
        unsafe {
            gemm_scaled_into(
                s.as_mut_ptr(),
                (nq, nk, d),
                Mat::rows(self.q.as_ptr(), d),
                Mat::cols(k.as_ptr(), d),
                scale,
            )
        };
        for (i, row) in s.chunks_mut(nk.max(1)).enumerate().take(nq) {
            mask.mask_row(self.batch, t, self.q0 + i, keys.start, row);
        }
        keys
    }

    fn forward(
        &self,
        mask: &AttnMask,
        scale: f32,
        s: &mut Vec<f32>,
        out: &mut [f32],
        lse: &mut [f32],
    ) {
        let d = self.d;
        let nq = out.len() / d;
        let keys = self.scores(mask, scale, nq, s);
        let nk = keys.len();
        let mut empty = Vec::new();
        for (i, row) in s.chunks_mut(nk.max(1)).enumerate().take(nq) {
            lse[i] = softmax_row(row);
            if lse[i] == f32::NEG_INFINITY {
                empty.push(i);
            }
        }
        let v = &self.v[keys.start * d..keys.end * d];
        // O = P · V (nq × d).
        // SAFETY: as in `scores` (out: nq × d, v: nk × d).
        unsafe {
            gemm_into(
                out.as_mut_ptr(),
                (nq, d, nk),
                Mat::rows(s.as_ptr(), nk),
                Mat::rows(v.as_ptr(), d),
                false,
            )
        };
        // A query that sees no key: the uniform row over all `t` keys.
        for i in empty {
            let o = &mut out[i * d..(i + 1) * d];
            o.fill(0.0);
            for vj in self.v.chunks_exact(d) {
                o.iter_mut()
                    .zip(vj)
                    .for_each(|(o, &x)| *o += x / self.t as f32);
            }
        }
    }
}

/// `buf` at length `n` for a matmul to overwrite: only growth is
/// initialised (a block's `gemm` with `accumulate = false` never reads its
/// output, and zeroing it was a memset per block).
pub(super) fn scratch(buf: &mut Vec<f32>, n: usize) {
    match buf.len() < n {
        true => buf.resize(n, 0.0),
        false => buf.truncate(n),
    }
}

/// `row ← softmax(row)` (masked keys `−∞` become 0); returns the row's
/// `log Σ exp`, or `−∞` (and the row left zero) when no key is allowed.
fn softmax_row(row: &mut [f32]) -> f32 {
    let max = max(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return f32::NEG_INFINITY;
    }
    let sum = exp_shifted(row, max);
    row.iter_mut().for_each(|x| *x /= sum);
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    // The block kernel's O (and its backward) against the matmul path:
    // `attention_backward::tests`.

    #[test]
    fn other_devices_and_dtypes_take_the_matmul_path() {
        let dev = &Device::Cpu;
        let q = Tensor::zeros((1, 1, 4, 8), candle_core::DType::BF16, dev).unwrap();
        let am = Tensor::ones((1, 4), candle_core::DType::U8, dev).unwrap();
        let mask = AttnMask::new(&am, None).unwrap();
        assert!(attention_forward(&q, &q, &q, &mask, 1.0, true)
            .unwrap()
            .is_none());
    }
}
