//! The one place that shifts labels and computes token log-probabilities;
//! every objective builds on it (the role of `_get_batch_logps` in the DPO
//! reference).

use candle_core::{Result, Tensor, D};

/// `log Σ exp(x)` over the last dimension, kept as `(..., 1)`. The max is
/// detached: it cancels exactly, so it needs no gradient.
pub fn logsumexp_keepdim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)
}

/// Log-softmax over the last dimension, differentiable (candle-nn's fused
/// softmax records no backward).
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    x.broadcast_sub(&logsumexp_keepdim(x)?)
}

/// Log-probability of each next token.
///
/// `logp[b, i] = log p(input_ids[b, i + 1] | input_ids[b, ..= i])`.
///
/// # Shapes
/// `logits`: `(b, t, vocab)` f32; `input_ids`: `(b, t)` u32. Returns `(b, t - 1)`.
/// Position `i` of the result belongs to target token `i + 1`: shift any
/// loss mask the same way (`mask[:, 1:]`).
pub fn token_logprobs(logits: &Tensor, input_ids: &Tensor) -> Result<Tensor> {
    let (_, t, _) = logits.dims3()?;
    let logits = logits.narrow(1, 0, t - 1)?;
    let targets = input_ids.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
    let picked = logits.contiguous()?.gather(&targets, 2)?; // (b, t-1, 1)
    picked.sub(&logsumexp_keepdim(&logits)?)?.squeeze(2)
}

/// Mean of `values` over positions where `mask` is 1, over the whole batch.
///
/// # Shapes
/// `values`, `mask`: same shape; `mask` f32 0/1. Returns a scalar.
pub fn masked_mean(values: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let total = values.mul(mask)?.sum_all()?;
    let count = mask.sum_all()?.clamp(1f32, f32::MAX)?;
    total.div(&count)
}
