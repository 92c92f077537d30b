//! Held-out loss: token-mean NLL of the trained tokens, and its perplexity.

use candle_core::Device;
use serde::Serialize;

use crate::data::{target_mask, EncodedExample, SequenceBatch, PAD_ID};
use crate::engine::forward_logps;
use crate::model::{LlamaForCausalLM, ModelInput};
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

/// Scores `examples` in batches of `batch_size`, graph-free, with the
/// engine's chunked vocabulary head.
pub fn evaluate_loss(
    model: &LlamaForCausalLM,
    examples: &[EncodedExample],
    batch_size: usize,
    device: &Device,
) -> Result<EvalLoss> {
    let (mut total, mut count) = (0f64, 0usize);
    let refs: Vec<&EncodedExample> = examples.iter().collect();
    for chunk in refs.chunks(batch_size.max(1)) {
        crate::interrupt::check("evaluation")?;
        let mb = SequenceBatch::collate(chunk, PAD_ID);
        if mb.seq_len() < 2 {
            continue; // no token has context: nothing to score
        }
        let tensors = mb.to_tensors(device)?;
        let ids = &tensors.input_ids;
        let mask = &tensors.attention_mask;
        let targets = target_mask(&mb);
        let (logp, _) = forward_logps(
            model,
            ModelInput::Ids(ids),
            mask,
            ids,
            Some(&targets),
            false,
        )?;
        let logp: Vec<Vec<f32>> = logp.to_vec2()?;
        for (row, mask) in logp.iter().zip(targets) {
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
