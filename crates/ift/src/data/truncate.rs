//! Truncation of an encoded sequence: the prompt to `max_prompt_length`, then the answer's end
//! to `max_length` (which never cuts the prompt); an example whose answer is entirely cut is
//! dropped (`None`) for the caller to count.

use super::encode::EncodedExample;
use super::mask::MaskedText;
use super::options::{EncodeOptions, PromptTruncation};

/// Truncation: first the prompt to `max_prompt_length` (keeping its start or end), then, if the
/// whole is longer than `max_length`, the answer's end. `None` when no trained token is left.
pub fn truncate(masked: &MaskedText, opts: &EncodeOptions) -> Option<EncodedExample> {
    let n = masked.input_ids.len();
    let answer_start = masked.answer_start.min(n);
    let mut prompt = 0..answer_start;
    if let Some(max) = opts.max_prompt_length.filter(|&m| answer_start > m) {
        prompt = match opts.prompt_truncation {
            PromptTruncation::KeepStart => 0..max,
            PromptTruncation::KeepEnd => answer_start - max..answer_start,
        };
    }
    let room = opts
        .max_length
        .map_or(usize::MAX, |m| m.saturating_sub(prompt.len()));
    let answer = answer_start..answer_start + (n - answer_start).min(room);
    let pick = |v: &[u32]| -> Vec<u32> {
        v[prompt.clone()]
            .iter()
            .chain(&v[answer.clone()])
            .copied()
            .collect()
    };
    let input_ids = pick(&masked.input_ids);
    let mut loss_mask: Vec<bool> = masked.loss_mask[prompt.clone()]
        .iter()
        .chain(&masked.loss_mask[answer.clone()])
        .copied()
        .collect();
    if let Some(first) = loss_mask.first_mut() {
        *first = false;
    }
    // Trained prompt tokens (train_on_prompt) do not keep an example whose answer is gone.
    let answer_trained = masked.loss_mask[answer.clone()].iter().any(|&m| m);
    (answer_trained && loss_mask.iter().any(|&m| m)).then_some(EncodedExample {
        input_ids,
        loss_mask,
    })
}
