//! Held-out loss: token-mean NLL of the trained tokens, and its perplexity.

use candle_core::Device;
use serde::Serialize;

use crate::data::{EncodedExample, SequenceBatch};
use crate::loss::token_logprobs;
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::train::{target_mask, PAD_ID};
use crate::Result;

/// Evaluation figures written as `eval_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalLoss {
    /// Mean NLL per trained token, in nats.
    pub eval_loss: f64,
    /// `exp(eval_loss)`.
    pub eval_ppl: f64,
    /// Trained tokens scored.
    pub eval_tokens: usize,
}

/// Scores `examples` in batches of `batch_size` on a graph-free view of `model`.
pub fn evaluate_loss(
    model: &LlamaForCausalLM,
    examples: &[EncodedExample],
    batch_size: usize,
    device: &Device,
) -> Result<EvalLoss> {
    let model = model.detached();
    let (mut total, mut count) = (0f64, 0usize);
    let refs: Vec<&EncodedExample> = examples.iter().collect();
    for chunk in refs.chunks(batch_size.max(1)) {
        let mb = SequenceBatch::collate(chunk, PAD_ID);
        let tensors = mb.to_tensors(device)?;
        let logits = model.forward(ModelInput::Ids(&tensors.input_ids), &tensors.attention_mask)?;
        let logp: Vec<Vec<f32>> = token_logprobs(&logits, &tensors.input_ids)?.to_vec2()?;
        for (row, mask) in logp.iter().zip(target_mask(&mb)) {
            for (lp, m) in row.iter().zip(mask) {
                if m {
                    total -= *lp as f64;
                    count += 1;
                }
            }
        }
    }
    let eval_loss = if count == 0 {
        0.0
    } else {
        total / count as f64
    };
    Ok(EvalLoss {
        eval_loss,
        eval_ppl: eval_loss.exp(),
        eval_tokens: count,
    })
}
