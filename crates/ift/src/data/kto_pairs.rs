//! KTO's mismatched pairs: the sequences whose reference log-probabilities
//! make the step's reference point `z` (TRL's pairing). A pure function of
//! the encoded examples, used by the objective and by the reference pass.

use super::encode::{EncodedExample, EncodedKto};

/// The mismatched sequences of a batch, as TRL pairs them: sequence `i` is the
/// prompt of example `i` followed by the answer of example `i − 1` (cyclically).
/// The prompt is the part before the first trained token. A sequence longer
/// than the longer of its two sources loses prompt tokens from the left (it
/// keeps at least one), so it never needs more memory than the batch itself.
pub fn kto_kl_sequences(batch: &[&EncodedKto]) -> Vec<EncodedExample> {
    let n = batch.len();
    (0..n)
        .map(|i| {
            let (prompt_of, answer_of) = (&batch[i].example, &batch[(i + n - 1) % n].example);
            let prompt = &prompt_of.input_ids[..answer_start(prompt_of)];
            let start = answer_start(answer_of);
            let cap = prompt_of.len().max(answer_of.len());
            let answer_len = answer_of.len() - start;
            let keep = prompt.len().min(cap.saturating_sub(answer_len)).max(1);
            let prompt = &prompt[prompt.len() - keep..];
            let mut ids = prompt.to_vec();
            ids.extend_from_slice(&answer_of.input_ids[start..]);
            let mut mask = vec![false; prompt.len()];
            mask.extend_from_slice(&answer_of.loss_mask[start..]);
            EncodedExample {
                input_ids: ids,
                loss_mask: mask,
            }
        })
        .collect()
}

/// Index of the first trained token (≥ 1: `loss_mask[0]` is always false).
fn answer_start(e: &EncodedExample) -> usize {
    e.loss_mask
        .iter()
        .position(|&m| m)
        .unwrap_or(e.len())
        .max(1)
}
