//! Objectives as pure functions over candle tensors: one method per file.
//!
//! Every function computes in f32 and keeps the autograd graph, so a caller
//! can `backward()` through the result. Labels are shifted only by `data::next_positions` (the target layout's owner).

mod dpo;
mod fused_logprobs;
pub mod ift;
pub mod ift_predict;
mod ift_weights;
mod kto;
mod log_sigmoid;
pub mod normalize;
mod orpo;
mod pair_logps;
pub mod sft;
mod simpo;
mod tdpo;
pub mod token_logprobs;

pub use dpo::{dpo_loss, dpo_loss_summed, DpoLossType, DpoParams};
pub use ift::{
    ift_loss, ift_weights, mixed_embeddings, replace_responses, shift_predictions, Propagation,
};
pub use ift_predict::{predict_tokens, row_seed, Prediction};
pub use ift_weights::{
    propagation_weights, weighted_loss, PropagationItem, PropagationNorm, PropagationParams,
    PropagationSide,
};
pub use kto::{kto_loss, kto_reference_point, KtoParams};
pub use log_sigmoid::{log1m_exp, log_sigmoid};
pub use normalize::{token_coefficients, Normalize, StepTotals};
pub use orpo::{orpo_log_odds, orpo_loss, OrpoParams};
pub use pair_logps::{PairLogps, PairLoss};
pub use sft::{sft_loss, sft_loss_from_logps, SftOutput};
pub use simpo::{simpo_loss, SimpoParams};
pub use tdpo::{tdpo_loss, tdpo_terms, TdpoParams, TdpoTerms, TdpoVariant};
pub use token_logprobs::{
    log_softmax, logsumexp_keepdim, masked_mean, token_logprobs, token_logprobs_primitive,
};
