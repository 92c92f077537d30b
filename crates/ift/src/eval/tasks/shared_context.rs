//! Log-likelihoods of a question's choices with their shared context computed
//! once. The choices of a multiple-choice question (or the context options of
//! a schema question, up to where they differ) start with the same tokens;
//! those run once into a key/value cache, and the choices then run as rows
//! that extend it. A 4-choice question costs one forward of the context plus
//! four of the continuations, not four of both, and the vocabulary head runs
//! only where a scored token is predicted. Several questions share each
//! forward (prefixes left-padded, each choice row reading its own question's
//! cache row), so the matrix products stay large, and questions are batched
//! longest first, so the padding stays small.
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
use crate::model::{position_ids_from_mask, KvCache, LlamaForCausalLM};
use crate::tokenizer::HfTokenizer;
use crate::Result;

/// Each group's scores, in order, with about `batch_rows` choice rows per
/// forward; `progress(requests_done)` after each forward.
pub fn grouped_loglikelihoods(
    model: &LlamaForCausalLM,
    tok: &HfTokenizer,
    groups: &[Vec<Request>],
    add_special_tokens: bool,
    batch_rows: usize,
    device: &Device,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<Score>>> {
    let model = model.for_inference()?;
    let max_len = model.config.max_position_embeddings;
    let encoded = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|r| encode_request(tok, r, add_special_tokens, max_len))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    // Longest first, as `score_sequences` batches: a forward pads every
    // prefix to its longest and every remainder to its widest, so groups of
    // like lengths share one (stable: equal keys keep their input order).
    // On 100 PIQA questions (SmolLM2, batch 8) this took 26 s to 19 s.
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&g| std::cmp::Reverse(padded_key(&encoded[g])));
    let mut slots: Vec<Option<Vec<EncodedExample>>> = encoded.into_iter().map(Some).collect();
    let sorted: Vec<Vec<EncodedExample>> = order.iter().filter_map(|&g| slots[g].take()).collect();
    let mut scores: Vec<Option<Vec<Score>>> = vec![None; sorted.len()];
    let (mut done, mut start) = (0, 0);
    while start < sorted.len() {
        crate::interrupt::check("evaluation")?;
        // At least one group per forward, then more while the rows fit.
        let mut end = start + 1;
        let mut rows = sorted[start].len();
        while end < sorted.len() && rows + sorted[end].len() <= batch_rows.max(1) {
            rows += sorted[end].len();
            end += 1;
        }
        let batch = score_groups(&model, &sorted[start..end], device)?;
        for (&g, group_scores) in order[start..end].iter().zip(batch) {
            scores[g] = Some(group_scores);
        }
        done += rows;
        progress(done);
        start = end;
    }
    Ok(scores.into_iter().flatten().collect())
}

/// A group's sort key: its longest continuation, then its shared prefix.
/// Continuations first: they vary more than contexts between questions (a
/// PIQA solution runs from a few words to a paragraph) and every row of a
/// forward pads to the widest one.
fn padded_key(group: &[EncodedExample]) -> (usize, usize) {
    let prefix = shared_prefix(group);
    let rest = group
        .iter()
        .map(|e| e.input_ids.len().saturating_sub(prefix));
    (rest.max().unwrap_or(0), prefix)
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

/// Scores several groups: their shared prefixes in one forward, then every
/// remainder in a second one over the prefixes' cache.
pub fn score_groups(
    model: &LlamaForCausalLM,
    groups: &[Vec<EncodedExample>],
    device: &Device,
) -> Result<Vec<Vec<Score>>> {
    let prefix: Vec<usize> = groups.iter().map(|g| shared_prefix(g)).collect();
    if prefix.contains(&0) {
        // A group shares nothing (or has nothing to predict from): plain batches.
        return groups
            .iter()
            .map(|g| score_sequences(model, g, g.len().max(1), device, |_| {}))
            .collect();
    }
    // Prefixes LEFT-padded, as generation pads prompts: every prefix then
    // ends in the last column, and a key's distance in the cache is its true
    // distance (what a sliding window measures).
    let (k, longest) = (groups.len(), prefix.iter().copied().max().unwrap_or(0));
    let prefix_mask: Vec<Vec<u32>> = prefix
        .iter()
        .map(|&p| [vec![0; longest - p], vec![1; p]].concat())
        .collect();
    let mut ids = Vec::with_capacity(k * longest);
    for (g, &p) in groups.iter().zip(&prefix) {
        ids.extend(std::iter::repeat_n(0, longest - p));
        ids.extend_from_slice(&g[0].input_ids[..p]);
    }
    let flat = |rows: &[Vec<u32>]| rows.iter().flatten().copied().collect::<Vec<u32>>();
    let mut cache = KvCache::new(model);
    let hidden = model.hidden_cached(
        &Tensor::from_vec(ids, (k, longest), device)?,
        &Tensor::from_vec(flat(&prefix_mask), (k, longest), device)?,
        &Tensor::from_vec(
            flat(&position_ids_from_mask(&prefix_mask)),
            (k, longest),
            device,
        )?,
        &mut cache,
    )?;
    // Each prefix's last position predicts its remainders' first token.
    let last: Vec<u32> = (0..k).map(|g| (g * longest + longest - 1) as u32).collect();
    let first = pick_logprobs(model, &hidden, &last, None, device)?;
    let vocab = model.config.vocab_size;

    // One row per request: its remainder after its group's prefix.
    let mut owner = Vec::new(); // (group, request) of each row
    for (g, group) in groups.iter().enumerate() {
        owner.extend((0..group.len()).map(|r| (g, r)));
    }
    let tail = |&(g, r): &(usize, usize)| &groups[g][r].input_ids[prefix[g]..];
    let width = owner.iter().map(|o| tail(o).len()).max().unwrap_or(0);
    let rest = if width == 0 {
        Vec::new()
    } else {
        let n = owner.len();
        let (mut ids, mut mask, mut pos, mut at, mut targets) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (row, o) in owner.iter().enumerate() {
            let (t, p) = (tail(o), prefix[o.0]);
            ids.extend((0..width).map(|i| t.get(i).copied().unwrap_or(0)));
            mask.extend_from_slice(&prefix_mask[o.0]);
            mask.extend((0..width).map(|i| u32::from(i < t.len())));
            pos.extend((0..width).map(|i| (p + i) as u32));
            // Position i predicts tail token i + 1.
            for i in 0..t.len().saturating_sub(1) {
                at.push((row * width + i) as u32);
                targets.push(t[i + 1]);
            }
        }
        let rows: Vec<u32> = owner.iter().map(|&(g, _)| g as u32).collect();
        let mut cache = cache.select_rows(&rows)?;
        let hidden = model.hidden_cached(
            &Tensor::from_vec(ids, (n, width), device)?,
            &Tensor::from_vec(mask, (n, longest + width), device)?,
            &Tensor::from_vec(pos, (n, width), device)?,
            &mut cache,
        )?;
        pick_logprobs(model, &hidden, &at, Some(&targets), device)?
    };

    let mut next = rest.iter();
    let mut out: Vec<Vec<Score>> = groups.iter().map(|g| Vec::with_capacity(g.len())).collect();
    for &(g, r) in &owner {
        let e = &groups[g][r];
        let p = prefix[g];
        let mut score = Score {
            logprob_sum: 0.0,
            tokens: 0,
        };
        for (j, &id) in e.input_ids.iter().enumerate().skip(p) {
            let lp = match j == p {
                true => first[g * vocab + id as usize],
                false => *next.next().expect("one log-probability per tail token"),
            };
            if e.loss_mask[j] {
                score.logprob_sum += f64::from(lp);
                score.tokens += 1;
            }
        }
        out[g].push(score);
    }
    Ok(out)
}

/// Log-softmax of the head at the flattened positions `at` of `hidden`
/// `(b, t, h)`: the picked `targets`' log-probabilities, or with `None` every
/// row's whole distribution (`at.len() × vocab`, flattened). The head runs in
/// chunks of positions, so its logits never exceed about 16 MiB at once.
fn pick_logprobs(
    model: &LlamaForCausalLM,
    hidden: &Tensor,
    at: &[u32],
    targets: Option<&[u32]>,
    device: &Device,
) -> Result<Vec<f32>> {
    let (b, t, h) = hidden.dims3()?;
    let flat = hidden.reshape((b * t, h))?;
    let chunk = ((1usize << 22) / model.config.vocab_size).max(1);
    let mut out = Vec::new();
    for (c, idx) in at.chunks(chunk).enumerate() {
        let rows = flat.index_select(&Tensor::new(idx, device)?, 0)?;
        let logits = model.head_logits(&rows)?.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        match targets {
            None => out.extend(logp.flatten_all()?.to_vec1::<f32>()?),
            Some(t) => {
                let t = &t[c * chunk..c * chunk + idx.len()];
                let t = Tensor::new(t, device)?.unsqueeze(1)?;
                out.extend(logp.gather(&t, 1)?.squeeze(1)?.to_vec1::<f32>()?);
            }
        }
    }
    Ok(out)
}
