//! SFT: its one option, its loss (`loss.rs`) and its micro-batch: one
//! forward, `Σ c·NLL` with the step's coefficients.

mod loss;

pub use loss::{sft_loss, sft_loss_from_logps, SftOutput};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::policy::Policy;
use super::{StepEnv, StepInfo};
use crate::data::{EncodedExample, SequenceBatch, Targets, PAD_ID};
use crate::loss::{token_coefficients, Normalize};
use crate::model::ModelInput;
use crate::Result;

/// SFT's one option (`[objective]` with `kind = "sft"`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftParams {
    /// `sequence` (default: mean of per-sequence token means, as the IFT
    /// reference trains) or `token` (one token mean over the optimiser step).
    pub normalize: Normalize,
}

pub fn micro_batch(
    policy: &Policy<'_>,
    examples: &[&EncodedExample],
    params: &SftParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
) -> Result<Tensor> {
    let mb = SequenceBatch::collate(examples, PAD_ID);
    let t = mb.to_tensors(env.device)?;
    let targets = Targets::new(&mb, &t)?;
    let coef = token_coefficients(&targets.rows, params.normalize, info.totals, env.device)?;
    let logp = policy.token_logprobs(
        ModelInput::Ids(&t.input_ids),
        &t.attention_mask,
        &t.input_ids,
        Some(&targets.rows),
    )?;
    Ok(sft_loss_from_logps(&logp, &coef)?)
}
