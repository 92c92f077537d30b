//! The numerics the methods share, as pure functions over candle tensors:
//! token log-probabilities (and their fused CPU op), `log σ`, the summed
//! log-probabilities of pairs, and the step-wide normalisation. Each method's
//! own loss is in its folder (`crate::methods`).
//!
//! Every function computes in f32 and keeps the autograd graph, so a caller
//! can `backward()` through the result. Labels are shifted only by
//! `data::next_positions` (the target layout's owner).

mod fused_logprobs;
mod log_sigmoid;
pub mod normalize;
mod pair_logps;
pub mod token_logprobs;

pub use log_sigmoid::{log1m_exp, log_sigmoid};
pub use normalize::{token_coefficients, Normalize, StepTotals};
pub(crate) use pair_logps::{f32, smoothed_logistic};
pub use pair_logps::{PairLogps, PairLoss};
pub use token_logprobs::{
    log_softmax, logsumexp_keepdim, masked_mean, token_logprobs, token_logprobs_primitive,
};
