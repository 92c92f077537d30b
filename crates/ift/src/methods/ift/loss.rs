//! Intuitive Fine-Tuning (Hua et al., ACL 2025), as the authors' reference
//! computes it (`docs/ift-method.md`). The pieces, each a pure function:
//!
//! 1. predictions `p_t = argmax logits_t` from a no-gradient teacher-forced
//!    pass ([`super::ift_predict`]);
//! 2. shift: `ŷ_0 = y_0`, `ŷ_t = p_{t−1}` ([`shift_predictions`]);
//! 3. response-only replacement: `ỹ_t = ŷ_t` where `y_t` is a response
//!    token, else `y_t` ([`replace_responses`]);
//! 4. temporal residual connection (Eq. 17):
//!    `e_t = (1 − λ)·E[y_t] + λ·E[ỹ_t]` ([`mixed_embeddings`]);
//! 5. a forward pass on `e`, token losses `ℓ_t = −m_t log p_θ(y_{t+1} | e_≤t)`;
//! 6. relation propagation (Eq. 21, reference form): weights `w` from
//!    [`super::propagation_weights`], and `L = Σ_t c_t w_t ℓ_t` with the
//!    step's normalisation coefficients `c` ([`ift_loss`]). With `sequence`
//!    normalisation this is the reference's `mean_seq Σ_t w_t ℓ_t / N`.

use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};

use super::weights::{propagation_weights, PropagationParams};

/// Which propagation formula (`objective.propagation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    /// The authors' reference: discounted, self-normalised weights (spec §3).
    #[default]
    Reference,
    /// The paper's Eq. 21 as printed: `Σ_n Σ_{i≥n} ℓ_i`, undiscounted and
    /// unnormalised, i.e. `w_t` = number of response positions up to `t`.
    PaperEq21,
}

/// `ŷ`: `ŷ_0 = y_0`, `ŷ_t = p_{t−1}`. `predictions` and `input_ids` are `(b, t)` u32.
pub fn shift_predictions(predictions: &Tensor, input_ids: &Tensor) -> Result<Tensor> {
    let t = input_ids.dim(1)?;
    Tensor::cat(
        &[
            &input_ids.narrow(1, 0, 1)?,
            &predictions.narrow(1, 0, t - 1)?,
        ],
        1,
    )
}

/// `ỹ`: the shifted predictions where `loss_mask` (`(b, t)`, non-zero on
/// response tokens) is set, the ground truth elsewhere.
pub fn replace_responses(
    input_ids: &Tensor,
    shifted: &Tensor,
    loss_mask: &Tensor,
) -> Result<Tensor> {
    loss_mask.ne(0f64)?.where_cond(shifted, input_ids)
}

/// `e = (1 − λ)·E[y] + λ·E[ỹ]`, `(b, t, hidden)`. `embedding` is `(vocab,
/// hidden)`: detached for the reference's frozen copy, live otherwise.
/// Where `ỹ = y` the mix is exactly `E[y]`.
pub fn mixed_embeddings(
    embedding: &Tensor,
    input_ids: &Tensor,
    mixed_ids: &Tensor,
    lambda: f64,
) -> Result<Tensor> {
    let (b, t) = input_ids.dims2()?;
    let hidden = embedding.dim(1)?;
    let lookup = |ids: &Tensor| {
        embedding
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, hidden))
    };
    let truth = lookup(input_ids)?;
    if lambda == 0.0 {
        return Ok(truth);
    }
    truth.affine(1.0 - lambda, 0.0)? + lookup(mixed_ids)?.affine(lambda, 0.0)?
}

/// The token weights of `propagation`, detached when `detach` is set.
/// `token_loss` and `mask` (f32 0/1) are `(b, t − 1)`.
pub fn ift_weights(
    token_loss: &Tensor,
    mask: &Tensor,
    propagation: Propagation,
    params: &PropagationParams,
    detach: bool,
) -> Result<Tensor> {
    let w = match propagation {
        Propagation::Reference => propagation_weights(token_loss, mask, params)?,
        // Σ_n Σ_{i≥n} ℓ_i = Σ_i ℓ_i · #{n ≤ i}: the count of response
        // positions up to and including i.
        Propagation::PaperEq21 => (mask.to_dtype(DType::F32)?.cumsum(D::Minus1)? * mask)?,
    };
    Ok(if detach { w.detach() } else { w })
}

/// `L = Σ c ⊙ w ⊙ ℓ` over a micro-batch (all `(b, t − 1)`): the weighted
/// loss, normalised by the step's coefficients `coefficients`.
pub fn ift_loss(token_loss: &Tensor, weights: &Tensor, coefficients: &Tensor) -> Result<Tensor> {
    token_loss.mul(weights)?.mul(coefficients)?.sum_all()
}
