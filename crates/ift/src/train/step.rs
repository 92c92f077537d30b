//! One optimiser step's forward and backward passes: micro-batches,
//! gradient accumulation, and the step's loss.

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};

use super::config::{ObjectiveConfig, ObjectiveKind};
use super::example::{Example, MicroBatch};
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
    batch: &[&Example],
    micro: usize,
    objective: &ObjectiveConfig,
    device: &Device,
) -> Result<StepPasses> {
    let totals = StepTotals {
        sequences: batch.len(),
        tokens: batch.iter().map(|e| e.trained_tokens()).sum(),
    };
    let vars: &[(String, Var)] = model.parameters().vars();
    let mut grads = GradStore::default();
    let (mut loss_sum, mut tokens) = (0f64, 0usize);
    for chunk in batch.chunks(micro.max(1)) {
        let mb = MicroBatch::new(chunk, device)?;
        let coef = token_coefficients(&mb.target_mask, objective.normalize, totals, device)?;
        let loss = match objective.kind {
            ObjectiveKind::Sft => {
                let logits = model.forward(ModelInput::Ids(&mb.input_ids), &mb.attention_mask)?;
                sft_loss(&logits, &mb.input_ids, &coef)?.loss
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
        tokens += mb.tokens;
    }
    Ok(StepPasses {
        loss: loss_sum,
        grads,
        tokens,
        trained_tokens: totals.tokens,
    })
}
