//! The fused attention's backward, block by block from the forward's
//! log-sum-exps (FlashAttention's backward): nothing of size `t × t` is kept
//! between the passes, and masked key blocks are never multiplied.
//!
//! For a block of queries and the keys it may see, with `S = scale·QKᵀ`:
//!
//! - `P = exp(S − lse)` (the forward's probabilities, recomputed),
//! - `dP = dO·Vᵀ`, `dS = P ∘ (dP − Δ)` with `Δᵢ = dOᵢ·Oᵢ` (`= Σⱼ Pᵢⱼ dPᵢⱼ`),
//! - `dQ = scale·dS·K`, `dK += scale·dSᵀ·Q`, `dV += Pᵀ·dO`.
//!
//! A query that sees no key had the uniform row over all `t` keys: its `dO`
//! spreads evenly over `dV` and it sends no gradient to `Q` or `K` (the
//! uniform row does not depend on the scores). Such queries are padding, so
//! their `dO` is zero in any masked loss anyway.

use candle_core::{Result, Tensor};
use rayon::prelude::*;

use super::attention::{shapes, Block, QUERY_BLOCK, SCORES};
use super::block_gemm::{gemm_into, Mat};
use super::softmax::AttnMask;
use crate::engine::view::F32View;

thread_local! {
    static D_SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `(dq (b, kvh, n_rep·t, d), dk, dv (b, kvh, t, d))` given `d_o` (laid out
/// like `q`), `delta` and `lse` `(b, kvh, n_rep·t)`. The operands are the
/// fused forward's (f32, on the CPU).
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    d_o: &Tensor,
    delta: &Tensor,
    lse: &Tensor,
    mask: &AttnMask,
    scale: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, kvh, rows, d, t) = shapes(q, k, v)?;
    if d_o.dims() != q.dims() || delta.dims() != [b, kvh, rows] || lse.dims() != [b, kvh, rows] {
        candle_core::bail!(
            "attention backward: dO {:?}, Δ {:?}, lse {:?} for q {:?}",
            d_o.dims(),
            delta.dims(),
            lse.dims(),
            q.dims()
        );
    }
    let c = |x: &Tensor| x.contiguous();
    let (q, k, v, d_o, delta, lse) = (c(q)?, c(k)?, c(v)?, c(d_o)?, c(delta)?, c(lse)?);
    let (qv, kv, vv) = (F32View::new(&q)?, F32View::new(&k)?, F32View::new(&v)?);
    let (ov, dv_, lv) = (
        F32View::new(&d_o)?,
        F32View::new(&delta)?,
        F32View::new(&lse)?,
    );
    let (qs, ks, vs) = (qv.get(), kv.get(), vv.get());
    let (os, ds, ls) = (ov.get(), dv_.get(), lv.get());
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; qs.len()],
        vec![0f32; ks.len()],
        vec![0f32; vs.len()],
    );
    let scale = scale as f32;
    // One task per KV group: its query heads and blocks run in turn, so its
    // dK and dV accumulate without sharing.
    dq.par_chunks_mut(rows * d)
        .zip(dk.par_chunks_mut(t * d))
        .zip(dv.par_chunks_mut(t * d))
        .enumerate()
        .for_each(|(g, ((dq, dk), dv))| {
            let kv = g * t * d..(g + 1) * t * d;
            let group = Group {
                q: &qs[g * rows * d..(g + 1) * rows * d],
                d_o: &os[g * rows * d..(g + 1) * rows * d],
                delta: &ds[g * rows..(g + 1) * rows],
                lse: &ls[g * rows..(g + 1) * rows],
                k: &ks[kv.clone()],
                v: &vs[kv],
                batch: g / kvh,
                t,
                d,
            };
            SCORES.with(|s| {
                D_SCORES.with(|dsb| {
                    let (s, dsb) = (&mut s.borrow_mut(), &mut dsb.borrow_mut());
                    // Blocks never straddle two query heads.
                    for h0 in (0..rows).step_by(t) {
                        for q0 in (0..t).step_by(QUERY_BLOCK) {
                            let nq = QUERY_BLOCK.min(t - q0);
                            group.block(mask, scale, h0 + q0, nq, (s, dsb), (dq, dk, dv));
                        }
                    }
                })
            });
        });
    let dev = q.device();
    Ok((
        Tensor::from_vec(dq, (b, kvh, rows, d), dev)?,
        Tensor::from_vec(dk, (b, kvh, t, d), dev)?,
        Tensor::from_vec(dv, (b, kvh, t, d), dev)?,
    ))
}

/// One KV group's operands: its `n_rep·t` query rows and `t` keys.
struct Group<'a> {
    q: &'a [f32],
    d_o: &'a [f32],
    delta: &'a [f32],
    lse: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    batch: usize,
    t: usize,
    d: usize,
}

impl Group<'_> {
    /// Query rows `r0..r0 + nq` (positions `r0 % t..` of one query head).
    fn block(
        &self,
        mask: &AttnMask,
        scale: f32,
        r0: usize,
        nq: usize,
        (s, dsb): (&mut Vec<f32>, &mut Vec<f32>),
        (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    ) {
        let (t, d) = (self.t, self.d);
        let blk = Block {
            batch: self.batch,
            q0: r0 % t,
            q: &self.q[r0 * d..],
            k: self.k,
            v: self.v,
            t,
            d,
        };
        let keys = blk.scores(mask, scale, nq, s); // S (nq × nk), masked −∞
        let nk = keys.len();
        // P = exp(S − lse): the forward's probabilities (0 where masked).
        let mut empty = Vec::new();
        for (i, row) in s.chunks_mut(nk.max(1)).enumerate().take(nq) {
            let l = self.lse[r0 + i];
            match l == f32::NEG_INFINITY {
                true => {
                    row.fill(0.0);
                    empty.push(i);
                }
                false => {
                    super::simd::exp_shifted(row, l);
                }
            }
        }
        let (kb, vb) = (&self.k[keys.start * d..], &self.v[keys.start * d..]);
        let d_o = &self.d_o[r0 * d..];
        super::attention::scratch(dsb, nq * nk);
        // SAFETY (every call below): each operand is a matrix of the given
        // extent inside its slice — s and dsb: nq × nk; q, dO, dq: nq rows of
        // d from r0; k, v, dk, dv: nk rows of d from keys.start.
        unsafe {
            // dP = dO · Vᵀ.
            let (op, vp) = (d_o.as_ptr(), vb.as_ptr());
            gemm_into(
                dsb.as_mut_ptr(),
                (nq, nk, d),
                Mat::rows(op, d),
                Mat::cols(vp, d),
                false,
            );
        }
        // dS = P ∘ (dP − Δ), scaled for Q and K.
        for (i, (ds, p)) in dsb
            .chunks_mut(nk.max(1))
            .zip(s.chunks(nk.max(1)))
            .enumerate()
            .take(nq)
        {
            let delta = self.delta[r0 + i];
            for (x, &p) in ds.iter_mut().zip(p) {
                *x = scale * p * (*x - delta);
            }
        }
        unsafe {
            let (qp, op) = (self.q[r0 * d..].as_ptr(), d_o.as_ptr());
            let (kp, sp, dsp) = (kb.as_ptr(), s.as_ptr(), dsb.as_ptr());
            // dQ = dS · K (written: each row block once).
            let dqp = dq[r0 * d..].as_mut_ptr();
            gemm_into(
                dqp,
                (nq, d, nk),
                Mat::rows(dsp, nk),
                Mat::rows(kp, d),
                false,
            );
            // dK += dSᵀ · Q, dV += Pᵀ · dO.
            let dkp = dk[keys.start * d..].as_mut_ptr();
            gemm_into(dkp, (nk, d, nq), Mat::cols(dsp, nk), Mat::rows(qp, d), true);
            let dvp = dv[keys.start * d..].as_mut_ptr();
            gemm_into(dvp, (nk, d, nq), Mat::cols(sp, nk), Mat::rows(op, d), true);
        }
        // The uniform rows: dV_j += dO_i / t for every key.
        for i in empty {
            let g = &d_o[i * d..(i + 1) * d];
            for dvj in dv.chunks_exact_mut(d) {
                dvj.iter_mut().zip(g).for_each(|(x, &y)| *x += y / t as f32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, D};

    use super::*;
    use crate::engine::kernels::attention::attention_forward;
    use crate::engine::kernels::softmax::{causal_softmax, causal_softmax_backward};
    use crate::engine::view::max_abs_diff;

    /// The block-wise forward's `O` and backward against the matmul path's
    /// (`P` kept, `causal_softmax_backward`) on `(b, kvh, n_rep, t, d)` with these mask
    /// rows and window.
    fn check(n_rep: usize, t: usize, mask_rows: &[Vec<u8>], window: Option<usize>) {
        let (b, kvh, d) = (mask_rows.len(), 2, 16);
        let dev = &Device::Cpu;
        let randn = |s: (usize, usize, usize, usize)| Tensor::randn(0f32, 1.0, s, dev).unwrap();
        let (q, k, v) = (
            randn((b, kvh, n_rep * t, d)),
            randn((b, kvh, t, d)),
            randn((b, kvh, t, d)),
        );
        let am = Tensor::from_vec(mask_rows.concat(), (b, t), dev).unwrap();
        let mask = AttnMask::new(&am, window).unwrap();
        let scale = 1.0 / (d as f64).sqrt();
        // dO, zero on queries that see no key (padding: no loss reaches them).
        let sees: Vec<f32> = (0..b * kvh * n_rep * t)
            .map(|r| {
                let (bi, qi) = (r / (kvh * n_rep * t), r % t);
                let any = mask
                    .visible_range(qi, t)
                    .any(|j| mask.allowed(bi, t, qi, j));
                any as u8 as f32
            })
            .collect();
        let sees = Tensor::from_vec(sees, (b, kvh, n_rep * t, 1), dev).unwrap();
        let d_o = randn((b, kvh, n_rep * t, d)).broadcast_mul(&sees).unwrap();

        let out = attention_forward(&q, &k, &v, &mask, scale, true)
            .unwrap()
            .unwrap();
        let delta = (&d_o * &out.o).unwrap().sum(D::Minus1).unwrap();
        let lse = out.lse.unwrap();
        let (dq, dk, dv) =
            attention_backward(&q, &k, &v, &d_o, &delta, &lse, &mask, scale).unwrap();

        let p = causal_softmax(&q.matmul(&k.t().unwrap()).unwrap(), &mask, t, scale).unwrap();
        let o = p.matmul(&v).unwrap();
        let dp = d_o.matmul(&v.t().unwrap()).unwrap();
        let ds = causal_softmax_backward(&p, &dp, scale).unwrap();
        let want = [
            ("o", &out.o, o),
            ("dq", &dq, ds.matmul(&k).unwrap()),
            ("dk", &dk, ds.t().unwrap().matmul(&q).unwrap()),
            ("dv", &dv, p.t().unwrap().matmul(&d_o).unwrap()),
        ];
        for (name, got, want) in want {
            let diff = max_abs_diff(got, &want);
            assert!(
                diff < 1e-4,
                "{name}: n_rep {n_rep}, t {t}, window {window:?}: {diff}"
            );
        }
    }

    #[test]
    fn blocks_agree_with_the_matmul_path() {
        check(1, 5, &[vec![1; 5]], None);
        // Several blocks with a ragged last one, GQA.
        check(3, 150, &[vec![1; 150], vec![1; 150]], None);
        // Right padding, and left padding (queries that see no key).
        let mut right = vec![1u8; 130];
        right[100..].fill(0);
        let mut left = vec![1u8; 130];
        left[..70].fill(0);
        check(2, 130, &[right, left], None);
        // A sliding window shorter than a block, and one spanning blocks.
        check(2, 140, &[vec![1; 140]], Some(10));
        check(1, 200, &[vec![1; 200]], Some(90));
    }
}
