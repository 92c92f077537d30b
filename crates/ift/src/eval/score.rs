//! Summed log-probabilities of the trained tokens: what `ift score` reports
//! and how reference log-probabilities get cached for preference objectives.

use candle_core::Device;
use serde::Serialize;

use crate::data::{target_mask, EncodedExample, SequenceBatch, PAD_ID};
use crate::engine::forward_logps;
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// One sequence's score, as written by `ift score`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Σ log p(token_i | tokens_<i) over the tokens of the loss mask, in nats.
    pub logprob_sum: f64,
    /// Number of scored tokens.
    pub tokens: usize,
}

/// Scores `examples` (their `loss_mask` says which tokens count) in batches
/// of `batch_size`, right-padded; calls `progress(done)` after each batch.
/// Results are in input order.
///
/// When there is more than one batch, examples are batched longest first, so
/// that each batch pads to a length close to its own: in input order, 20
/// preference pairs of SmolLM2 padded 22k tokens to 43k, by length to 29k
/// (and attention grows with the square of the padded length).
pub fn score_sequences(
    model: &LlamaForCausalLM,
    examples: &[EncodedExample],
    batch_size: usize,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Score>> {
    let batch_size = batch_size.max(1);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    if examples.len() > batch_size {
        // Stable: equal lengths keep their input order.
        order.sort_by_key(|&i| std::cmp::Reverse(examples[i].input_ids.len()));
    }
    let mut out = vec![None; examples.len()];
    let mut done = 0;
    for idx in order.chunks(batch_size) {
        crate::interrupt::check("scoring")?;
        let chunk: Vec<&EncodedExample> = idx.iter().map(|&i| &examples[i]).collect();
        for (&i, score) in idx.iter().zip(score_batch(model, &chunk, device)?) {
            out[i] = Some(score);
        }
        done += idx.len();
        progress(done);
    }
    Ok(out.into_iter().flatten().collect())
}

fn score_batch(
    model: &LlamaForCausalLM,
    chunk: &[&EncodedExample],
    device: &Device,
) -> Result<Vec<Score>> {
    let batch = SequenceBatch::collate(chunk, PAD_ID);
    if batch.seq_len() < 2 {
        // Nothing has context: every score is empty.
        return Ok(chunk
            .iter()
            .map(|_| Score {
                logprob_sum: 0.0,
                tokens: 0,
            })
            .collect());
    }
    let tensors = batch.to_tensors(device)?;
    // The engine's chunked head: never the whole (batch, tokens, vocab) logits.
    // and only the scored tokens' rows of it.
    let ids = &tensors.input_ids;
    let targets = target_mask(&batch);
    let (logp, _) = forward_logps(
        model,
        ModelInput::Ids(ids),
        &tensors.attention_mask,
        ids,
        Some(&targets),
        false,
    )?;
    let logp: Vec<Vec<f32>> = logp.to_vec2()?;
    Ok(logp
        .iter()
        .zip(targets)
        .map(|(row, mask)| {
            let picked = row
                .iter()
                .zip(&mask)
                .filter(|(_, &m)| m)
                .map(|(&lp, _)| lp as f64);
            Score {
                logprob_sum: picked.sum(),
                tokens: mask.iter().filter(|&&m| m).count(),
            }
        })
        .collect())
}
