//! SFT's micro-batch: one forward, `Σ c·NLL` with the step's coefficients.

use candle_core::Tensor;

use super::{StepEnv, StepInfo};
use crate::data::{EncodedExample, SequenceBatch, Targets, PAD_ID};
use crate::loss::{sft_loss_from_logps, token_coefficients};
use crate::model::ModelInput;
use crate::objective::SftParams;
use crate::train::policy::Policy;
use crate::Result;

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
