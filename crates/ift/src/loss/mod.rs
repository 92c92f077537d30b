//! Objectives. One method = one file = one pure function over plain tensors.

pub mod normalize;
pub mod sft;
pub mod token_logprobs;

pub use normalize::{token_coefficients, Normalize, StepTotals};
pub use sft::{sft_loss, SftOutput};
pub use token_logprobs::{log_softmax, logsumexp_keepdim, masked_mean, token_logprobs};
