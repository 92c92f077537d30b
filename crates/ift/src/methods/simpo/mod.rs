//! SimPO (Meng et al., 2024): its options and loss (`loss.rs`) and its
//! micro-batch; no reference model.

mod loss;

pub use loss::{simpo_loss, SimpoParams};

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
    p: &SimpoParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    pairwise(policy, pairs, p.sft_weight, info, env, diag, |logps| {
        Ok(simpo_loss(logps, p)?)
    })
}
