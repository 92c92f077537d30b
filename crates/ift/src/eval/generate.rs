//! Batched generation with a key/value cache passed in: left-padded prompts
//! are prefilled once, then each step feeds one token per row.

use candle_core::{DType, Device, Tensor, D};
use rand::{rngs::StdRng, SeedableRng};

use super::sampling::{apply_repetition_penalty, choose_token, GenerateOptions};
use crate::model::{position_ids_from_mask, KvCache, LlamaForCausalLM};
use crate::tokenizer::HfTokenizer;
use crate::{Error, Result};

/// Extends each prompt, batched with LEFT padding (so every row's next token
/// is in the last column), until it emits a stop token, its new text contains
/// a stop string, or it has `max_new_tokens`. Returns only the new tokens of
/// each row, stop token excluded. `on_token(row, id)` sees every returned
/// token as it is chosen (for streaming). Runs on a graph-free model view.
pub fn generate(
    model: &LlamaForCausalLM,
    tokenizer: &HfTokenizer,
    prompts: &[Vec<u32>],
    opts: &GenerateOptions,
    device: &Device,
    mut on_token: impl FnMut(usize, u32),
) -> Result<Vec<Vec<u32>>> {
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::Generate("an empty prompt has no next token".into()));
    }
    opts.validate()
        .map_err(|(name, m)| Error::Generate(format!("`{name}`: {m}")))?;
    let n = prompts.len();
    let mut out = vec![Vec::new(); n];
    if n == 0 || opts.max_new_tokens == 0 {
        return Ok(out);
    }
    let model = model.for_inference()?;
    let mut cache = KvCache::new(&model);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // Padding id 0 is never attended to; the mask marks it.
    let mut mask: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| [vec![0; longest - p.len()], vec![1; p.len()]].concat())
        .collect();
    let ids: Vec<u32> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(0, longest - p.len()).chain(p.iter().copied()))
        .collect();
    let positions = position_ids_from_mask(&mask);
    let mut logits = step(&model, &ids, &mask, &positions, &mut cache, device)?;
    let mut done = vec![false; n];
    let mut seen: Vec<Vec<u32>> = prompts.to_vec();
    while !done.iter().all(|&d| d) {
        let mut next = vec![0u32; n];
        for row in 0..n {
            if done[row] {
                continue;
            }
            let mut l = logits[row].clone();
            apply_repetition_penalty(&mut l, &seen[row], opts.repetition_penalty);
            let id = choose_token(&l, opts, &mut rng);
            if opts.stop_token_ids.contains(&id) {
                done[row] = true;
                continue;
            }
            next[row] = id;
            seen[row].push(id);
            out[row].push(id);
            on_token(row, id);
            if out[row].len() >= opts.max_new_tokens
                || hits_stop_string(tokenizer, &out[row], &opts.stop_strings)?
            {
                done[row] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        // Finished rows keep feeding a masked dummy token so the batch stays rectangular.
        for (row, m) in mask.iter_mut().enumerate() {
            m.push(u32::from(!done[row]));
        }
        let positions: Vec<Vec<u32>> = seen.iter().map(|s| vec![s.len() as u32 - 1]).collect();
        logits = step(&model, &next, &mask, &positions, &mut cache, device)?;
    }
    Ok(out)
}

/// One cached forward; returns each row's last-position logits.
fn step(
    model: &LlamaForCausalLM,
    ids: &[u32],
    mask: &[Vec<u32>],
    positions: &[Vec<u32>],
    cache: &mut KvCache,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let n = mask.len();
    let t_new = ids.len() / n;
    let ids = Tensor::from_slice(ids, (n, t_new), device)?;
    let flat = |v: &[Vec<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
    let mask = Tensor::from_vec(flat(mask), (n, mask[0].len()), device)?;
    let pos = Tensor::from_vec(flat(positions), (n, t_new), device)?;
    let logits = model.forward_cached(&ids, &mask, &pos, cache)?;
    let last = logits.narrow(1, t_new - 1, 1)?.squeeze(1)?;
    Ok(last.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

/// Whether the decoding of `new` contains any of `stops`.
fn hits_stop_string(tok: &HfTokenizer, new: &[u32], stops: &[String]) -> Result<bool> {
    if stops.is_empty() {
        return Ok(false);
    }
    let text = tok.decode(new, false)?;
    Ok(stops
        .iter()
        .any(|s| !s.is_empty() && text.contains(s.as_str())))
}

/// Greedily extends `prompt` by at most `max_new_tokens`, stopping at any id
/// in `stop` (not returned). Returns only the new tokens. The cached path
/// with greedy options; kept for callers that have no tokenizer at hand.
pub fn greedy_generate(
    model: &LlamaForCausalLM,
    prompt: &[u32],
    max_new_tokens: usize,
    stop: &[u32],
    device: &Device,
) -> Result<Vec<u32>> {
    let model = model.for_inference()?;
    let mut cache = KvCache::new(&model);
    let mut out = Vec::new();
    let mut ids = prompt.to_vec();
    let mut fed = 0; // tokens of `ids` already in the cache
    while out.len() < max_new_tokens && !ids.is_empty() {
        let new = &ids[fed..];
        let input = Tensor::from_slice(new, (1, new.len()), device)?;
        let mask = Tensor::ones((1, ids.len()), DType::U32, device)?;
        let pos = Tensor::arange(fed as u32, ids.len() as u32, device)?.unsqueeze(0)?;
        let logits = model.forward_cached(&input, &mask, &pos, &mut cache)?;
        let next = logits
            .narrow(1, new.len() - 1, 1)?
            .squeeze(1)?
            .argmax(D::Minus1)?;
        let next = next.to_vec1::<u32>()?[0];
        if stop.contains(&next) {
            break;
        }
        fed = ids.len();
        out.push(next);
        ids.push(next);
    }
    Ok(out)
}
