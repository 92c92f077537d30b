//! Summed log-probabilities of chosen tokens: what `ift score` reports and
//! how reference log-probabilities get cached for preference objectives.

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::loss::token_logprobs;
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// A token sequence and which of its tokens are scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSequence {
    pub input_ids: Vec<u32>,
    /// `scored[i]`: whether `log p(input_ids[i] | input_ids[..i])` counts.
    /// `scored[0]` is ignored: the first token has no context.
    pub scored: Vec<bool>,
}

/// One sequence's score, as written by `ift score`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Σ log p(token_i | tokens_<i) over the scored tokens, in nats.
    pub logprob_sum: f64,
    /// Number of scored tokens.
    pub tokens: usize,
}

/// Scores `sequences` in batches of `batch_size`, right-padded; calls
/// `progress(done)` after each batch. Results are in input order.
pub fn score_sequences(
    model: &LlamaForCausalLM,
    sequences: &[ScoredSequence],
    batch_size: usize,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Score>> {
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(batch_size.max(1)) {
        out.extend(score_batch(model, chunk, device)?);
        progress(out.len());
    }
    Ok(out)
}

fn score_batch(
    model: &LlamaForCausalLM,
    batch: &[ScoredSequence],
    device: &Device,
) -> Result<Vec<Score>> {
    let t = batch.iter().map(|s| s.input_ids.len()).max().unwrap_or(0);
    if t < 2 {
        // Nothing has context: every score is empty.
        return Ok(batch
            .iter()
            .map(|_| Score {
                logprob_sum: 0.0,
                tokens: 0,
            })
            .collect());
    }
    let b = batch.len();
    let mut ids = vec![0u32; b * t];
    let mut attention = vec![0f32; b * t];
    let mut scored = vec![0f32; b * (t - 1)];
    for (r, s) in batch.iter().enumerate() {
        for (i, &id) in s.input_ids.iter().enumerate() {
            ids[r * t + i] = id;
            attention[r * t + i] = 1.0;
            if i > 0 && s.scored.get(i).copied().unwrap_or(false) {
                scored[r * (t - 1) + i - 1] = 1.0;
            }
        }
    }
    let ids = Tensor::from_vec(ids, (b, t), device)?;
    let attention = Tensor::from_vec(attention, (b, t), device)?;
    let scored = Tensor::from_vec(scored, (b, t - 1), device)?;
    let logits = model.forward(ModelInput::Ids(&ids), &attention)?;
    let logp = token_logprobs(&logits, &ids)?;
    let sums: Vec<f32> = logp.mul(&scored)?.sum(1)?.to_vec1()?;
    let counts: Vec<f32> = scored.sum(1)?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(sums
        .into_iter()
        .zip(counts)
        .map(|(s, c)| Score {
            logprob_sum: s as f64,
            tokens: c as usize,
        })
        .collect())
}
