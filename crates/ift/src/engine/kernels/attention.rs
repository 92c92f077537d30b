//! Causal attention for passes without a backward (evaluation, `ift score`,
//! the reference pass, IFT's prediction pass): `O = softmax(scale·QKᵀ + mask)·V`
//! a block of queries at a time, so the `(b, h, t, t)` scores never exist.
//!
//! A training forward keeps the probabilities for its backward, so it takes
//! the two matmuls and [`causal_softmax`](super::softmax::causal_softmax)
//! instead. Here each block of [`QUERY_BLOCK`] queries multiplies only the keys
//! causality (and the sliding window) leaves it: about half of the
//! matmul work, and no scores buffer larger than `QUERY_BLOCK × t` per thread.
//! Evaluating 1,300-token sequences at batch 8 used to allocate and free a
//! 0.5 GB scores tensor several times per layer (most of `ift eval`'s system time).
//!
//! Masking is the softmax kernel's (`AttnMask::allowed`), and a query that may
//! see no key gets the same uniform row over all keys.

use std::cell::RefCell;

use candle_core::{Result, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::softmax::AttnMask;
use crate::engine::view::{fused, F32View};

/// Queries per block: the scores buffer is `QUERY_BLOCK × keys`.
pub const QUERY_BLOCK: usize = 64;

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `O` `(b, kvh, n_rep·t, d)` for `q` laid out like the scores of
/// `causal_softmax` (the query heads sharing a KV head stacked along time) and
/// `k`, `v` `(b, kvh, t, d)`. `None` where the fused CPU kernel does not apply
/// (other devices, bf16): the caller takes the matmul path.
pub fn attention_no_grad(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttnMask,
    scale: f64,
) -> Result<Option<Tensor>> {
    if !fused(&[q, k, v]) {
        return Ok(None);
    }
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
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let (qv, kv, vv) = (F32View::new(&q)?, F32View::new(&k)?, F32View::new(&v)?);
    let (qs, ks, vs) = (qv.get(), kv.get(), vv.get());
    let scale = scale as f32;
    let mut out = vec![0f32; qs.len()];
    // Tasks: each query head's `t` rows (head `h` of KV group `h / n_rep`,
    // batch row `h / n_rep / kvh`), then blocks of queries; every block
    // writes its own rows of `out`.
    let n_rep = rows / t;
    out.par_chunks_mut(t * d).enumerate().for_each(|(h, oh)| {
        let g = h / n_rep;
        let (k, v) = (
            &ks[g * t * d..(g + 1) * t * d],
            &vs[g * t * d..(g + 1) * t * d],
        );
        oh.par_chunks_mut(QUERY_BLOCK * d)
            .enumerate()
            .for_each(|(bi, ob)| {
                let q0 = bi * QUERY_BLOCK;
                let q = &qs[(h * t + q0) * d..];
                let block = Block {
                    batch: g / kvh,
                    q0,
                    q,
                    k,
                    v,
                    t,
                    d,
                };
                SCORES.with(|s| block.run(mask, scale, &mut s.borrow_mut(), ob));
            })
    });
    Tensor::from_vec(out, (b, kvh, rows, d), q.device()).map(Some)
}

/// One block of queries (positions `q0..`) against its group's keys and values.
struct Block<'a> {
    batch: usize,
    q0: usize,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    t: usize,
    d: usize,
}

impl Block<'_> {
    fn run(&self, mask: &AttnMask, scale: f32, s: &mut Vec<f32>, out: &mut [f32]) {
        let (t, d) = (self.t, self.d);
        let nq = out.len() / d;
        // Keys any query of the block may see: from the first query's window
        // start to the last query's own position.
        let lo = mask.visible_range(self.q0, t).start;
        let hi = (self.q0 + nq).min(t);
        let nk = hi - lo;
        s.clear();
        s.resize(nq * nk, 0.0);
        let (k, v) = (&self.k[lo * d..hi * d], &self.v[lo * d..hi * d]);
        // S = Q · Kᵀ (nq × nk): Kᵀ's rows are K's columns.
        // SAFETY: each extent and stride describes a matrix inside the slice
        // it comes from (q: nq rows of d, k and v: nk × d, s: nq × nk).
        unsafe { matmul_into(s, (nq, nk, d), self.q.as_ptr(), d, k.as_ptr(), (1, d)) };
        let mut empty = Vec::new();
        for (i, row) in s.chunks_mut(nk.max(1)).enumerate().take(nq) {
            if !softmax_row(
                row,
                |j| mask.allowed(self.batch, t, self.q0 + i, lo + j),
                scale,
            ) {
                empty.push(i);
            }
        }
        // O = P · V (nq × d).
        // SAFETY: as above (out: nq × d).
        unsafe { matmul_into(out, (nq, d, nk), s.as_ptr(), nk, v.as_ptr(), (d, 1)) };
        // A query that sees no key: the uniform row over all `t` keys.
        for i in empty {
            let o = &mut out[i * d..(i + 1) * d];
            o.fill(0.0);
            for vj in self.v.chunks_exact(d) {
                o.iter_mut().zip(vj).for_each(|(o, &x)| *o += x / t as f32);
            }
        }
    }
}

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, single-threaded (the caller is
/// a rayon task): `dst` and `lhs` row-major with row strides `n` and `lhs_rs`,
/// `rhs` with (row, column) strides `rhs_s`.
///
/// # Safety
/// The pointers must address matrices of those extents and strides.
unsafe fn matmul_into(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_s: (usize, usize),
) {
    debug_assert!(dst.len() >= m * n);
    let (dst_rs, lhs_rs) = (n as isize, lhs_rs as isize);
    let (rhs_rs, rhs_cs) = (rhs_s.0 as isize, rhs_s.1 as isize);
    // gemm: dst = alpha·dst + beta·lhs·rhs, strides given as (column, row).
    gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        dst_rs,
        false,
        lhs,
        1,
        lhs_rs,
        rhs,
        rhs_cs,
        rhs_rs,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// `row ← softmax(scale · row)` over the keys `allowed(j)`, zero elsewhere;
/// `false` (and the row left zero) when no key is allowed.
fn softmax_row(row: &mut [f32], allowed: impl Fn(usize) -> bool, scale: f32) -> bool {
    let mut max = f32::NEG_INFINITY;
    for (j, x) in row.iter_mut().enumerate() {
        if allowed(j) {
            *x *= scale;
            max = max.max(*x);
        } else {
            *x = f32::NEG_INFINITY;
        }
    }
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return false;
    }
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp(); // exp(−∞) = 0 for the masked keys
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
    true
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;
    use crate::engine::kernels::softmax::causal_softmax;

    /// The block kernel against the two matmuls and the softmax kernel, on
    /// `(b, kvh, n_rep, t, d)` with the given mask rows and window.
    fn check(n_rep: usize, t: usize, mask_rows: &[Vec<u8>], window: Option<usize>) {
        let (b, kvh, d) = (mask_rows.len(), 2, 16);
        let dev = &Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (b, kvh, n_rep * t, d), dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (b, kvh, t, d), dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (b, kvh, t, d), dev).unwrap();
        let flat: Vec<u8> = mask_rows.concat();
        let am = Tensor::from_vec(flat, (b, t), dev).unwrap();
        let mask = AttnMask::new(&am, window).unwrap();
        let scale = 1.0 / (d as f64).sqrt();
        let ours = attention_no_grad(&q, &k, &v, &mask, scale)
            .unwrap()
            .unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap();
        let p = causal_softmax(&scores, &mask, t, scale).unwrap();
        let want = p.matmul(&v).unwrap();
        let diff = crate::engine::view::max_abs_diff(&ours, &want);
        assert!(
            diff < 1e-5,
            "n_rep {n_rep}, t {t}, window {window:?}: max |diff| {diff}"
        );
    }

    #[test]
    fn blocks_agree_with_the_matmul_path() {
        // One block, several blocks with a ragged last one, GQA.
        check(1, 5, &[vec![1; 5]], None);
        check(3, 150, &[vec![1; 150], vec![1; 150]], None);
        // Right padding, and a row padded on the left (its first queries see
        // no key: the uniform row).
        let mut right = vec![1u8; 130];
        right[100..].fill(0);
        let mut left = vec![1u8; 130];
        left[..70].fill(0);
        check(2, 130, &[right, left], None);
        // A sliding window shorter than a block, and one spanning blocks.
        check(2, 140, &[vec![1; 140]], Some(10));
        check(1, 200, &[vec![1; 200]], Some(90));
    }

    #[test]
    fn other_devices_and_dtypes_take_the_matmul_path() {
        let dev = &Device::Cpu;
        let q = Tensor::zeros((1, 1, 4, 8), candle_core::DType::BF16, dev).unwrap();
        let am = Tensor::ones((1, 4), candle_core::DType::U8, dev).unwrap();
        let mask = AttnMask::new(&am, None).unwrap();
        assert!(attention_no_grad(&q, &q, &q, &mask, 1.0).unwrap().is_none());
    }
}
