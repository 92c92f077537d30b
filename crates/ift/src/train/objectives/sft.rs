//! SFT's micro-batch: one forward, `Σ c·NLL` with the step's coefficients.

use candle_core::Tensor;

use super::{StepEnv, StepInfo};
use crate::data::{EncodedExample, SequenceBatch};
use crate::loss::{sft_loss, token_coefficients};
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::objective::SftParams;
use crate::train::step::{target_mask, PAD_ID};
use crate::Result;

pub fn micro_batch(
    model: &LlamaForCausalLM,
    examples: &[&EncodedExample],
    params: &SftParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
) -> Result<Tensor> {
    let mb = SequenceBatch::collate(examples, PAD_ID);
    let coef = token_coefficients(&target_mask(&mb), params.normalize, info.totals, env.device)?;
    let t = mb.to_tensors(env.device)?;
    let logits = model.forward(ModelInput::Ids(&t.input_ids), &t.attention_mask)?;
    Ok(sft_loss(&logits, &t.input_ids, &coef)?.loss)
}
