//! The vocabulary head fused with log-softmax and the label pick, in column
//! chunks of the vocabulary, so that no more than `(rows, chunk)` logits
//! exist at once (the `(tokens, vocab)` logits of SmolLM2 are 85× its hidden
//! states). Forward keeps only each row's `lse = log Σ exp(h·wᵥ)`:
//!
//! `logp[r] = h[r]·w[y_r] − lse[r]`.
//!
//! Backward recomputes each chunk's logits and uses
//! `dlogits = g ∘ (onehot(y) − exp(logits − lse))`:
//! `dh = Σ_chunks dlogits · W_c`, `dW_c = dlogitsᵀ · h` (each chunk's rows of
//! `dW` are written once, never accumulated).

use candle_core::{DType, Result, Tensor, D};

use crate::engine::view::{fused, par_rows, F32View};

/// About this many logits per chunk (16 MiB of f32).
const CHUNK_ELEMS: usize = 1 << 22;

/// Each row's target log-probability and logsumexp, both `(rows,)`.
pub struct HeadLogps {
    pub logp: Tensor,
    pub lse: Tensor,
}

fn chunk_cols(rows: usize, vocab: usize) -> usize {
    (CHUNK_ELEMS / rows.max(1)).clamp(256, vocab.max(1))
}

fn chunk_logits(h: &Tensor, w: &Tensor, v0: usize, n: usize) -> Result<Tensor> {
    h.matmul(&w.narrow(0, v0, n)?.t()?)
}

/// `h` `(rows, hidden)`, `w` `(vocab, hidden)`, `targets` `(rows,)` u32.
pub fn head_logprobs(h: &Tensor, w: &Tensor, targets: &Tensor) -> Result<HeadLogps> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    let ids = targets.to_vec1::<u32>()?;
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        candle_core::bail!("token id {bad} is outside the vocabulary of {vocab}");
    }
    let step = chunk_cols(rows, vocab);
    if !fused(&[h, w]) {
        let picked = (h * w.index_select(targets, 0)?)?.sum(D::Minus1)?;
        let mut max: Option<Tensor> = None;
        let mut sum: Option<Tensor> = None;
        for v0 in (0..vocab).step_by(step) {
            let l = chunk_logits(h, w, v0, step.min(vocab - v0))?;
            let m_c = l.max_keepdim(D::Minus1)?;
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
        return Ok(HeadLogps {
            logp: (picked - &lse)?,
            lse,
        });
    }
    // Per row: running max, running Σ exp(· − max), the target's logit.
    let mut state = vec![0f32; rows * 3];
    state.chunks_mut(3).for_each(|s| s[0] = f32::NEG_INFINITY);
    for v0 in (0..vocab).step_by(step) {
        let n = step.min(vocab - v0);
        let l = chunk_logits(h, w, v0, n)?;
        let lv = F32View::new(&l)?;
        let ls = lv.get();
        par_rows(&mut state, 3, |r, s| {
            let row = &ls[r * n..(r + 1) * n];
            let m_c = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let m = s[0].max(m_c);
            s[1] = s[1] * (s[0] - m).exp() + row.iter().map(|&x| (x - m).exp()).sum::<f32>();
            s[0] = m;
            let y = ids[r] as usize;
            if (v0..v0 + n).contains(&y) {
                s[2] = row[y - v0];
            }
        });
    }
    let lse: Vec<f32> = state.chunks(3).map(|s| s[0] + s[1].ln()).collect();
    let logp: Vec<f32> = state.chunks(3).zip(&lse).map(|(s, l)| s[2] - l).collect();
    Ok(HeadLogps {
        logp: Tensor::from_vec(logp, rows, h.device())?,
        lse: Tensor::from_vec(lse, rows, h.device())?,
    })
}

/// `(dh (rows, hidden), dW (vocab, hidden))` given `g = ∂L/∂logp` `(rows,)`.
pub fn head_backward(
    h: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let (rows, vocab) = (h.dim(0)?, w.dim(0)?);
    let step = chunk_cols(rows, vocab);
    let mut dh: Option<Tensor> = None;
    let mut dw = Vec::new();
    let (ids, lses, gs) = (
        targets.to_vec1::<u32>()?,
        lse.to_vec1::<f32>()?,
        g.to_vec1::<f32>()?,
    );
    for v0 in (0..vocab).step_by(step) {
        let n = step.min(vocab - v0);
        let l = chunk_logits(h, w, v0, n)?.contiguous()?;
        let dl = if fused(&[&l]) {
            let lv = F32View::new(&l)?;
            let ls = lv.get();
            let mut dl = vec![0f32; rows * n];
            par_rows(&mut dl, n, |r, o| {
                let (row, gr, lr) = (&ls[r * n..(r + 1) * n], gs[r], lses[r]);
                if gr == 0.0 {
                    return; // padding and untrained positions
                }
                for (o, &x) in o.iter_mut().zip(row) {
                    *o = -gr * (x - lr).exp();
                }
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
        };
        let part = dl.matmul(&w.narrow(0, v0, n)?)?;
        dh = Some(match dh {
            Some(acc) => (acc + part)?,
            None => part,
        });
        dw.push(dl.t()?.matmul(h)?);
    }
    let dh = match dh {
        Some(d) => d,
        None => h.zeros_like()?,
    };
    Ok((dh, Tensor::cat(&dw, 0)?))
}
