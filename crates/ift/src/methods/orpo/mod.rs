//! ORPO (Hong et al., 2024): its options and loss (`loss.rs`, the odds-ratio
//! term) and its micro-batch; no reference model.

mod loss;

pub use loss::{orpo_log_odds, orpo_loss, OrpoParams};

use candle_core::Tensor;

use super::diagnostics::Diagnostics;
use super::pairs::pairwise;
use super::policy::Policy;
use super::{StepEnv, StepInfo};
use crate::data::EncodedPreference;
use crate::Result;

pub fn micro_batch(
    policy: &Policy<'_>,
    pairs: &[&EncodedPreference],
    p: &OrpoParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    // ORPO's L_SFT is part of the method (weight 1), not an option.
    pairwise(policy, pairs, 1.0, info, env, diag, |logps| {
        Ok(orpo_loss(logps, p)?)
    })
}
