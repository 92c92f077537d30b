//! Supervised fine-tuning: teacher-forced negative log-likelihood of the
//! trained tokens.
//!
//! `L = Σ_{s,t} c_{s,t} · (−log p_θ(y_{s,t+1} | y_{s,≤t}))`, where the
//! coefficients `c` come from [`crate::loss::token_coefficients`] and
//! are zero on untrained positions.

use candle_core::{Result, Tensor};

use crate::loss::token_logprobs;

/// The SFT loss of one micro-batch and its per-token NLL.
#[derive(Debug, Clone)]
pub struct SftOutput {
    /// Scalar loss, already normalised for the whole optimiser step.
    pub loss: Tensor,
    /// `(b, t - 1)` per-token NLL (all positions, untrained ones included).
    pub token_nll: Tensor,
}

/// # Shapes
/// `logits`: `(b, t, vocab)`; `input_ids`: `(b, t)` u32; `coefficients`:
/// `(b, t - 1)` f32.
pub fn sft_loss(logits: &Tensor, input_ids: &Tensor, coefficients: &Tensor) -> Result<SftOutput> {
    let token_logps = token_logprobs(logits, input_ids)?;
    let loss = sft_loss_from_logps(&token_logps, coefficients)?;
    Ok(SftOutput {
        loss,
        token_nll: token_logps.neg()?,
    })
}

/// The same loss from the target tokens' log-probabilities `(b, t − 1)`:
/// `−Σ c · log p`.
pub fn sft_loss_from_logps(token_logps: &Tensor, coefficients: &Tensor) -> Result<Tensor> {
    token_logps.mul(coefficients)?.sum_all()?.neg()
}
