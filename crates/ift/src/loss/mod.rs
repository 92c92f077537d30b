//! Objectives. One method = one file = one pure function over plain tensors.

pub mod token_logprobs;

pub use token_logprobs::{log_softmax, logsumexp_keepdim, masked_mean, token_logprobs};
