//! Objectives as pure functions over candle tensors: one method per file.
//!
//! Every function computes in f32 and keeps the autograd graph, so a caller
//! can `backward()` through the result. Only `token_logprobs.rs` shifts labels.

mod dpo;
mod fused_logprobs;
pub mod ift;
pub mod ift_predict;
mod ift_weights;
mod log_sigmoid;
pub mod normalize;
mod orpo;
pub mod sft;
pub mod token_logprobs;

pub use dpo::{dpo_loss, DpoOutput, DpoParams};
pub use ift::{
    ift_loss, ift_weights, mixed_embeddings, replace_responses, shift_predictions, Propagation,
};
pub use ift_predict::{predict_tokens, PredictionMode, PredictionParams};
pub use ift_weights::{
    propagation_weights, weighted_loss, PropagationItem, PropagationNorm, PropagationParams,
    PropagationSide,
};
pub use log_sigmoid::{log1m_exp, log_sigmoid};
pub use normalize::{token_coefficients, Normalize, StepTotals};
pub use orpo::{orpo_loss, OrpoOutput, OrpoParams};
pub use sft::{sft_loss, SftOutput};
pub use token_logprobs::{
    log_softmax, logsumexp_keepdim, masked_mean, token_logprobs, token_logprobs_primitive,
};
