//! One optimiser step's forward and backward passes: micro-batches,
//! gradient accumulation, and the step's loss.

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};

use super::config::{ObjectiveConfig, ObjectiveKind};
use crate::data::{EncodedExample, SequenceBatch};
use crate::loss::{sft_loss, token_coefficients, StepTotals};
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// What one step's passes produced.
pub struct StepPasses {
    /// The step's loss (sum of the micro-batch losses, already normalised).
    pub loss: f64,
    /// Gradients of the trainable parameters only, summed over micro-batches.
    pub grads: GradStore,
    /// Real tokens in the step.
    pub tokens: usize,
    /// Trained target tokens in the step.
    pub trained_tokens: usize,
}

/// Runs forward + backward over `batch` in micro-batches of `micro`.
/// Coefficients use the whole step's totals, so the split does not change
/// the result.
pub fn forward_backward(
    model: &LlamaForCausalLM,
    batch: &[&EncodedExample],
    micro: usize,
    objective: &ObjectiveConfig,
    device: &Device,
) -> Result<StepPasses> {
    let totals = StepTotals {
        sequences: batch.len(),
        tokens: batch.iter().map(|e| e.num_trained()).sum(),
    };
    let vars: &[(String, Var)] = model.parameters().vars();
    let mut grads = GradStore::default();
    let (mut loss_sum, mut tokens) = (0f64, 0usize);
    for chunk in batch.chunks(micro.max(1)) {
        let mb = SequenceBatch::collate(chunk, PAD_ID);
        let coef = token_coefficients(&target_mask(&mb), objective.normalize, totals, device)?;
        let tensors = mb.to_tensors(device)?;
        let loss = match objective.kind {
            ObjectiveKind::Sft => {
                let logits =
                    model.forward(ModelInput::Ids(&tensors.input_ids), &tensors.attention_mask)?;
                sft_loss(&logits, &tensors.input_ids, &coef)?.loss
            }
        };
        let store = loss.backward()?;
        for (_, var) in vars {
            if let Some(g) = store.get(var.as_tensor()) {
                let sum = match grads.get(var.as_tensor()) {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                };
                grads.insert(var.as_tensor(), sum);
            }
        }
        loss_sum += loss.to_scalar::<f32>()? as f64;
        tokens += chunk.iter().map(|e| e.len()).sum::<usize>();
    }
    Ok(StepPasses {
        loss: loss_sum,
        grads,
        tokens,
        trained_tokens: totals.tokens,
    })
}

/// Padding id: never attended, never trained, so any valid id will do.
pub const PAD_ID: u32 = 0;

/// The loss mask shifted to targets: entry `i` of row `s` says whether
/// token `i + 1` trains (the layout of `token_logprobs`).
pub fn target_mask(batch: &SequenceBatch) -> Vec<Vec<bool>> {
    batch
        .loss_mask
        .iter()
        .map(|row| row.iter().skip(1).copied().collect())
        .collect()
}
