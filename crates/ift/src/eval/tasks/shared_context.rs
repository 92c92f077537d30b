//! Log-likelihoods of a question's choices with their shared context computed
//! once. The choices of a multiple-choice question (or the context options of
//! a schema question, up to where they differ) start with the same tokens;
//! those run once into a key/value cache, and the choices then run together
//! as one batch that extends it. A 4-choice question costs one forward of the
//! context plus four of the continuations, not four of both, and the
//! vocabulary head runs only where a scored token is predicted.
//!
//! The tokens are exactly those of [`encode_request`] (context and
//! continuation tokenized together), so the scores equal the flat path's
//! ([`super::loglikelihoods`]) up to float rounding: the shared prefix is the
//! longest run of token ids every request of the group starts with, cut
//! before the first scored token.

use candle_core::{DType, Device, Tensor, D};

use super::loglik::{encode_request, Request};
use crate::data::EncodedExample;
use crate::eval::score::{score_sequences, Score};
use crate::model::{KvCache, LlamaForCausalLM};
use crate::tokenizer::HfTokenizer;
use crate::Result;

/// Each group's scores, in order; `progress(requests_done)` after each group.
pub fn grouped_loglikelihoods(
    model: &LlamaForCausalLM,
    tok: &HfTokenizer,
    groups: &[Vec<Request>],
    add_special_tokens: bool,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<Score>>> {
    let model = model.detached();
    let max_len = model.config.max_position_embeddings;
    let mut done = 0;
    let mut out = Vec::with_capacity(groups.len());
    for group in groups {
        let encoded = group
            .iter()
            .map(|r| encode_request(tok, r, add_special_tokens, max_len))
            .collect::<Result<Vec<_>>>()?;
        out.push(score_group(&model, &encoded, device)?);
        done += group.len();
        progress(done);
    }
    Ok(out)
}

/// The number of leading tokens every sequence shares, cut before the first
/// scored token of any of them.
pub fn shared_prefix(group: &[EncodedExample]) -> usize {
    let Some(first) = group.first() else {
        return 0;
    };
    group.iter().fold(first.input_ids.len(), |p, e| {
        let common = first
            .input_ids
            .iter()
            .zip(&e.input_ids)
            .take_while(|(a, b)| a == b)
            .count();
        let scored = e.loss_mask.iter().position(|&m| m);
        p.min(common).min(scored.unwrap_or(e.input_ids.len()))
    })
}

/// Scores one group: the shared prefix once, then every remainder in one batch.
pub fn score_group(
    model: &LlamaForCausalLM,
    group: &[EncodedExample],
    device: &Device,
) -> Result<Vec<Score>> {
    let p = shared_prefix(group);
    if p == 0 {
        // Nothing shared (or nothing to predict from): the plain batched path.
        return score_sequences(model, group, group.len().max(1), device, |_| {});
    }
    let mut cache = KvCache::new(model);
    let prefix = Tensor::from_slice(&group[0].input_ids[..p], (1, p), device)?;
    let mask = Tensor::ones((1, p), DType::U32, device)?;
    let pos = Tensor::arange(0u32, p as u32, device)?.unsqueeze(0)?;
    let hidden = model.hidden_cached(&prefix, &mask, &pos, &mut cache)?;
    // The prefix's last position predicts every remainder's first token.
    let last = model.head_logits(&hidden.narrow(1, p - 1, 1)?)?;
    let first: Vec<f32> = candle_nn::ops::log_softmax(&last, D::Minus1)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let rest = remainder_logprobs(model, group, p, cache, device)?;
    Ok(group
        .iter()
        .enumerate()
        .map(|(row, e)| {
            let mut score = Score {
                logprob_sum: 0.0,
                tokens: 0,
            };
            for (j, (&id, &scored)) in e.input_ids.iter().zip(&e.loss_mask).enumerate() {
                if !scored || j < p {
                    continue;
                }
                let lp = if j == p {
                    first[id as usize]
                } else {
                    rest[row][j - p - 1]
                };
                score.logprob_sum += f64::from(lp);
                score.tokens += 1;
            }
            score
        })
        .collect())
}

/// Row `i`, column `k`: log p(token `p + k + 1` | everything before it), the
/// remainders right-padded into one batch over the repeated prefix cache.
fn remainder_logprobs(
    model: &LlamaForCausalLM,
    group: &[EncodedExample],
    p: usize,
    cache: KvCache,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let n = group.len();
    let longest = group
        .iter()
        .map(|e| e.input_ids.len() - p)
        .max()
        .unwrap_or(0);
    if longest == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    let (mut ids, mut mask, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for e in group {
        let tail = &e.input_ids[p..];
        for k in 0..longest {
            ids.push(tail.get(k).copied().unwrap_or(0));
            targets.push(tail.get(k + 1).copied().unwrap_or(0));
        }
        mask.extend(std::iter::repeat_n(1u32, p));
        mask.extend((0..longest).map(|k| u32::from(k < tail.len())));
    }
    let ids = Tensor::from_vec(ids, (n, longest), device)?;
    let mask = Tensor::from_vec(mask, (n, p + longest), device)?;
    let pos = Tensor::arange(p as u32, (p + longest) as u32, device)?
        .unsqueeze(0)?
        .repeat((n, 1))?;
    let mut cache = cache.repeat_batch(n)?;
    let logits = model.forward_cached(&ids, &mask, &pos, &mut cache)?;
    let logp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let targets = Tensor::from_vec(targets, (n, longest, 1), device)?;
    Ok(logp.gather(&targets, 2)?.squeeze(2)?.to_vec2()?)
}
