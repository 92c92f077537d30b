//! Targets: the layout of every log-probability, loss mask and prediction
//! the objectives read — position `i` of a row is token `i + 1` of its
//! sequence (the token position `i` predicts). This module is the one place
//! token ids and masks are shifted into it ([`next_positions`],
//! [`target_mask`]); [`Targets`] is a micro-batch's, built once.

use candle_core::{DType, Tensor};

use super::batch::{SequenceBatch, SequenceTensors};

/// `x[:, 1:]` of a `(b, t, …)` tensor, contiguous: ids or masks in the
/// target layout. Needs `t ≥ 1`.
pub fn next_positions(x: &Tensor) -> candle_core::Result<Tensor> {
    let t = x.dim(1)?;
    x.narrow(1, 1, t.saturating_sub(1))?.contiguous()
}

/// The loss mask shifted to targets: entry `i` of row `s` says whether
/// token `i + 1` trains (the layout of `token_logprobs`).
pub fn target_mask(batch: &SequenceBatch) -> Vec<Vec<bool>> {
    batch
        .loss_mask
        .iter()
        .map(|row| row.iter().skip(1).copied().collect())
        .collect()
}

/// What a micro-batch trains on (or scores), in the target layout.
#[derive(Debug, Clone)]
pub struct Targets {
    /// `(b, t − 1)` u32: the token each position predicts.
    pub ids: Tensor,
    /// `(b, t − 1)` f32, 1 where the target trains.
    pub mask: Tensor,
    /// The same mask on the host, one row per sequence: the positions a
    /// pass must compute (`engine::Wanted`).
    pub rows: Vec<Vec<bool>>,
}

impl Targets {
    /// The targets of `batch`, whose tensors are `tensors`.
    pub fn new(batch: &SequenceBatch, tensors: &SequenceTensors) -> candle_core::Result<Self> {
        Ok(Targets {
            ids: next_positions(&tensors.input_ids)?,
            mask: next_positions(&tensors.loss_mask)?.to_dtype(DType::F32)?,
            rows: target_mask(batch),
        })
    }
}
