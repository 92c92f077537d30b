//! The vocabulary head fused with log-softmax and the label pick, in column
//! chunks of the vocabulary, so that no more than `(rows, chunk)` logits
//! exist at once (the `(tokens, vocab)` logits of SmolLM2 are 85× its hidden
//! states). Forward keeps only each row's `lse = log Σ exp(h·wᵥ)`:
//!
//! `logp[r] = h[r]·w[y_r] − lse[r]`.
//!
//! Backward recomputes each chunk's logits (or reuses them, for heads small
//! enough to keep) and uses
//! `dlogits = g ∘ (onehot(y) − exp(logits − lse))`:
//! `dh = Σ_chunks dlogits · W_c`, `dW_c = dlogitsᵀ · h` (each chunk's rows of
//! `dW` are written once, never accumulated).

use candle_core::{DType, Result, Tensor, D};

use super::matmul::matmul;
use super::simd::{scaled_exp_shifted, sum_exp_shifted};
use crate::engine::view::{fused, par_rows, F32View};

/// About this many logits per chunk (16 MiB of f32).
const CHUNK_ELEMS: usize = 1 << 22;

/// A forward that will be followed by a backward keeps its logit chunks when
/// they total at most this many (256 MiB of f32), trading memory for the
/// head's recomputation (7 % of a SmolLM2 step's FLOPs); bigger heads recompute.
const KEEP_ELEMS: usize = 1 << 26;

/// Each row's target log-probability and logsumexp, both `(rows,)`.
pub struct HeadLogps {
    pub logp: Tensor,
    pub lse: Tensor,
    /// The logits chunk by chunk, when kept for the backward.
    pub chunks: Option<Vec<Tensor>>,
    /// Each row's most likely token `(rows,)` u32 (the first on ties, as
    /// torch's `argmax`), when asked for ([`head_argmax_logprobs`]).
    pub argmax: Option<Tensor>,
}

/// How many vocabulary columns the chunked head computes at once for `rows`
/// rows (`ift bench matmul` times the head in the same chunks).
pub fn chunk_cols(rows: usize, vocab: usize) -> usize {
    (CHUNK_ELEMS / rows.max(1)).max(256).min(vocab.max(1))
}

/// One chunk's logits, in f32 whatever the matmul's dtype (bf16 training
/// multiplies in bf16; the log-softmax arithmetic stays f32).
fn chunk_logits(h: &Tensor, w: &Tensor, v0: usize, n: usize) -> Result<Tensor> {
    matmul(h, &w.narrow(0, v0, n)?.t()?)?.to_dtype(DType::F32)
}

/// `h` `(rows, hidden)`, `w` `(vocab, hidden)`, `targets` `(rows,)` u32.
/// With `for_backward`, small heads keep their logits (`KEEP_ELEMS`).
pub fn head_logprobs(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    for_backward: bool,
) -> Result<HeadLogps> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    let keep = for_backward && rows * vocab <= KEEP_ELEMS;
    head_logprobs_in(h, w, targets, chunk_cols(rows, vocab), keep, false)
}

/// [`head_logprobs`] without a backward, plus each row's argmax: IFT's greedy
/// predictions and its `loss_sft` in one chunked pass, never the whole
/// `(rows, vocab)` logits.
pub fn head_argmax_logprobs(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<HeadLogps> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    head_logprobs_in(h, w, targets, chunk_cols(rows, vocab), false, true)
}

fn head_logprobs_in(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    step: usize,
    keep: bool,
    want_argmax: bool,
) -> Result<HeadLogps> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    let mut kept = Vec::new();
    // Checked where the ids already live on the host; on a GPU this would be
    // a round-trip per forward (the tokenizer's ids were checked against the
    // vocabulary when the model was loaded: `check_vocab`).
    let ids = match h.device().is_cpu() {
        true => targets.to_vec1::<u32>()?,
        false => Vec::new(),
    };
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        candle_core::bail!("token id {bad} is outside the vocabulary of {vocab}");
    }
    if !fused(&[h, w]) {
        let f32 = |t: &Tensor| t.to_dtype(DType::F32);
        let picked = (f32(h)? * f32(&w.index_select(targets, 0)?)?)?.sum(D::Minus1)?;
        let mut max: Option<Tensor> = None;
        let mut sum: Option<Tensor> = None;
        let mut best: Option<Tensor> = None; // (rows, 1) u32
        for v0 in (0..vocab).step_by(step) {
            let l = chunk_logits(h, w, v0, step.min(vocab - v0))?;
            if keep {
                kept.push(l.clone());
            }
            let m_c = l.max_keepdim(D::Minus1)?;
            if want_argmax {
                let a_c = (l.argmax_keepdim(D::Minus1)?.to_dtype(DType::F32)? + v0 as f64)?;
                best = Some(match (&best, &max) {
                    // A later chunk wins only with a strictly larger maximum.
                    (Some(b), Some(m)) => m_c.gt(m)?.where_cond(&a_c, b)?,
                    _ => a_c,
                });
            }
            let m = match &max {
                Some(m) => m.maximum(&m_c)?,
                None => m_c,
            };
            let s_c = l.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?;
            sum = Some(match (&sum, &max) {
                (Some(s), Some(old)) => ((s * (old - &m)?.exp()?)? + s_c)?,
                _ => s_c,
            });
            max = Some(m);
        }
        let lse = match (sum, max) {
            (Some(s), Some(m)) => (s.log()? + m)?.squeeze(1)?,
            _ => Tensor::zeros(rows, DType::F32, h.device())?,
        };
        let argmax = match best {
            Some(b) => Some(b.squeeze(1)?.to_dtype(DType::U32)?),
            None => None,
        };
        return Ok(HeadLogps {
            logp: (picked - &lse)?,
            lse,
            chunks: keep.then_some(kept),
            argmax,
        });
    }
    // Per row: running max, running Σ exp(· − max), the target's logit, and
    // the argmax (an f32 holds any vocabulary index below 2²⁴ exactly).
    let mut state = vec![0f32; rows * 4];
    state.chunks_mut(4).for_each(|s| s[0] = f32::NEG_INFINITY);
    for v0 in (0..vocab).step_by(step) {
        let n = step.min(vocab - v0);
        let l = chunk_logits(h, w, v0, n)?;
        let lv = F32View::new(&l)?;
        let ls = lv.get();
        par_rows(&mut state, 4, |r, s| {
            let row = &ls[r * n..(r + 1) * n];
            let (mut m_c, mut a_c) = (f32::NEG_INFINITY, 0usize);
            for (j, &x) in row.iter().enumerate() {
                if x > m_c {
                    (m_c, a_c) = (x, j);
                }
            }
            // A later chunk wins only with a strictly larger maximum.
            if m_c > s[0] {
                s[3] = (v0 + a_c) as f32;
            }
            let m = s[0].max(m_c);
            s[1] = s[1] * (s[0] - m).exp() + sum_exp_shifted(row, m);
            s[0] = m;
            let y = ids[r] as usize;
            if (v0..v0 + n).contains(&y) {
                s[2] = row[y - v0];
            }
        });
        drop(lv);
        if keep {
            kept.push(l);
        }
    }
    let lse: Vec<f32> = state.chunks(4).map(|s| s[0] + s[1].ln()).collect();
    let logp: Vec<f32> = state.chunks(4).zip(&lse).map(|(s, l)| s[2] - l).collect();
    let argmax = match want_argmax {
        true => {
            let a: Vec<u32> = state.chunks(4).map(|s| s[3] as u32).collect();
            Some(Tensor::from_vec(a, rows, h.device())?)
        }
        false => None,
    };
    Ok(HeadLogps {
        logp: Tensor::from_vec(logp, rows, h.device())?,
        lse: Tensor::from_vec(lse, rows, h.device())?,
        chunks: keep.then_some(kept),
        argmax,
    })
}

/// `(dh (rows, hidden), dW (vocab, hidden))` given `g = ∂L/∂logp` `(rows,)`.
pub fn head_backward(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    g: &Tensor,
    kept: Option<&[Tensor]>,
) -> Result<(Tensor, Tensor)> {
    let step = chunk_cols(h.dim(0)?, w.dim(0)?);
    head_backward_in(h, w, targets, lse, g, step, kept)
}

fn head_backward_in(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    g: &Tensor,
    step: usize,
    kept: Option<&[Tensor]>,
) -> Result<(Tensor, Tensor)> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    let mut dh: Option<Tensor> = None;
    let mut dw = Vec::new();
    // The fused CPU kernel reads these on the host; other devices keep them.
    let host = fused(&[lse, g]);
    let (ids, lses, gs) = match host {
        true => (
            targets.to_vec1::<u32>()?,
            lse.to_vec1::<f32>()?,
            g.to_vec1::<f32>()?,
        ),
        false => Default::default(),
    };
    for (c, v0) in (0..vocab).step_by(step).enumerate() {
        let n = step.min(vocab - v0);
        let l = match kept.and_then(|k| k.get(c)) {
            Some(l) => l.clone(),
            None => chunk_logits(h, w, v0, n)?,
        }
        .contiguous()?;
        let dl = if host {
            let lv = F32View::new(&l)?;
            let ls = lv.get();
            let mut dl = vec![0f32; rows * n];
            par_rows(&mut dl, n, |r, o| {
                let (row, gr, lr) = (&ls[r * n..(r + 1) * n], gs[r], lses[r]);
                if gr == 0.0 {
                    return; // padding and untrained positions
                }
                scaled_exp_shifted(o, row, lr, -gr);
                let y = ids[r] as usize;
                if (v0..v0 + n).contains(&y) {
                    o[y - v0] += gr;
                }
            });
            Tensor::from_vec(dl, (rows, n), h.device())?
        } else {
            let cols = Tensor::arange(v0 as u32, (v0 + n) as u32, h.device())?.unsqueeze(0)?;
            let onehot = cols
                .broadcast_eq(&targets.unsqueeze(1)?)?
                .to_dtype(DType::F32)?;
            let p = l.broadcast_sub(&lse.unsqueeze(1)?)?.exp()?;
            (onehot - p)?.broadcast_mul(&g.unsqueeze(1)?)?
        }
        .to_dtype(w.dtype())?;
        let part = matmul(&dl, &w.narrow(0, v0, n)?)?;
        dh = Some(match dh {
            Some(acc) => (acc + part)?,
            None => part,
        });
        dw.push(matmul(&dl.t()?, h)?);
    }
    let dh = match dh {
        Some(d) => d,
        None => h.zeros_like()?,
    };
    Ok((dh, Tensor::cat(&dw, 0)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::with_primitive_kernels;
    use crate::loss::log_softmax;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Several chunks (the last one short) give the whole head's log-softmax
    /// and its gradients, on the fused kernels and on the primitive fallback.
    fn chunked_head_equals_whole_logits() {
        let dev = Device::Cpu;
        let (rows, hidden, vocab) = (9, 16, 1000);
        let h = Var::randn(0f32, 1.0, (rows, hidden), &dev).unwrap();
        let w = Var::randn(0f32, 0.5, (vocab, hidden), &dev).unwrap();
        let ids: Vec<u32> = (0..rows).map(|r| (r * 331 % vocab) as u32).collect();
        let ids = Tensor::from_vec(ids, rows, &dev).unwrap();
        let g: Vec<f32> = (0..rows).map(|r| r as f32 * 0.3 - 1.0).collect();
        let g = Tensor::from_vec(g, rows, &dev).unwrap();

        let logits = h.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        let want = log_softmax(&logits)
            .unwrap()
            .gather(&ids.unsqueeze(1).unwrap(), 1)
            .unwrap();
        let want = want.squeeze(1).unwrap();
        let store = (&want * &g).unwrap().sum_all().unwrap().backward().unwrap();

        for keep in [false, true] {
            let (ht, wt) = (h.as_tensor(), w.as_tensor());
            let out = head_logprobs_in(ht, wt, &ids, 300, keep, false).unwrap();
            assert!(max_diff(&out.logp, &want) < 1e-4);
            assert_eq!(out.chunks.as_ref().map(Vec::len), keep.then_some(4));
            let kept = out.chunks.as_deref();
            let (dh, dw) = head_backward_in(ht, wt, &ids, &out.lse, &g, 300, kept).unwrap();
            assert!(max_diff(&dh, store.get(ht).unwrap()) < 1e-4);
            assert!(max_diff(&dw, store.get(wt).unwrap()) < 1e-4);
        }
        let out = head_argmax_logprobs(h.as_tensor(), w.as_tensor(), &ids).unwrap();
        assert!(max_diff(&out.logp, &want) < 1e-4);
        let best = logits.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(out.argmax.unwrap().to_vec1::<u32>().unwrap(), best);
        // A tie across chunks goes to the first index, as torch's argmax.
        let mut wv = vec![0.01f32; vocab * hidden];
        for j in [5usize, 605] {
            wv[j * hidden..(j + 1) * hidden].fill(1.0);
        }
        let w2 = Tensor::from_vec(wv, (vocab, hidden), &dev).unwrap();
        let h2 = Tensor::ones((rows, hidden), DType::F32, &dev).unwrap();
        let out = head_logprobs_in(&h2, &w2, &ids, 300, false, true).unwrap();
        assert_eq!(out.argmax.unwrap().to_vec1::<u32>().unwrap(), vec![5; rows]);
    }

    #[test]
    fn chunked_head_fused() {
        chunked_head_equals_whole_logits();
    }

    #[test]
    fn chunked_head_primitive() {
        with_primitive_kernels(chunked_head_equals_whole_logits);
    }

    #[test]
    fn out_of_vocabulary_target_is_an_error() {
        let dev = Device::Cpu;
        let h = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((5, 4), candle_core::DType::F32, &dev).unwrap();
        let ids = Tensor::from_vec(vec![1u32, 7], 2, &dev).unwrap();
        assert!(head_logprobs(&h, &w, &ids, false).is_err());
    }
}
