//! Objectives as pure functions over candle tensors: one method per file.
//!
//! Every function computes in f32 and keeps the autograd graph, so a caller
//! can `backward()` through the result.

mod dpo;
mod ift_weights;
mod log_sigmoid;
mod orpo;

pub use dpo::{dpo_loss, DpoOutput, DpoParams};
pub use ift_weights::{
    propagation_weights, weighted_loss, PropagationItem, PropagationNorm, PropagationParams,
    PropagationSide,
};
pub use log_sigmoid::{log1m_exp, log_sigmoid};
pub use orpo::{orpo_loss, OrpoOutput, OrpoParams};
