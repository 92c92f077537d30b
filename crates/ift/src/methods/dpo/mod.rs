//! DPO (Rafailov et al., 2023) with cDPO's label smoothing, the hinge loss
//! and IPO: its options and loss (`loss.rs`) and its micro-batch, against the
//! reference's log-probabilities of both answers.

mod loss;

pub use loss::{dpo_loss, dpo_loss_summed, DpoLossType, DpoParams};

use candle_core::Tensor;

use super::diagnostics::Diagnostics;
use super::pairs::{pair_reference, pairwise};
use super::policy::Policy;
use super::ReferenceOptions;
use super::{StepEnv, StepInfo};
use crate::data::EncodedPreference;
use crate::Result;

pub fn micro_batch(
    policy: &Policy<'_>,
    pairs: &[&EncodedPreference],
    p: &DpoParams,
    r: &ReferenceOptions,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    pairwise(policy, pairs, p.sft_weight, info, env, diag, |logps| {
        let reference = pair_reference(pairs, logps, r, env)?;
        Ok(dpo_loss(logps, &reference, p)?)
    })
}
