//! KTO's micro-batch and its reference point `z` (see `loss/kto.rs`): `z` comes
//! from the whole optimiser step's mismatched pairs, computed once per step
//! without a graph, before the micro-batches.

use candle_core::Tensor;

use super::{reference_logps, row_sums, target_mask_tensor, Diagnostics, StepEnv, StepInfo};
use crate::data::{EncodedExample, EncodedKto, SequenceBatch};
use crate::eval::score_sequences;
use crate::loss::{kto_loss, kto_reference_point, KtoParams};
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::objective::ReferenceOptions;
use crate::train::policy::Policy;
use crate::train::step::{target_mask, PAD_ID};
use crate::Result;

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

/// `z` of the step whose examples are `batch`.
pub fn reference_point(
    model: &LlamaForCausalLM,
    batch: &[&EncodedKto],
    r: &ReferenceOptions,
    micro: usize,
    env: &StepEnv<'_>,
) -> Result<f64> {
    let kl = kto_kl_sequences(batch);
    let refs: Vec<&EncodedExample> = kl.iter().collect();
    let policy: Vec<f64> = score_sequences(model, &kl, micro, env.device, |_| {})?
        .iter()
        .map(|s| s.logprob_sum)
        .collect();
    let reference: Vec<f64> = reference_logps(&refs, r, env)?
        .into_iter()
        .map(f64::from)
        .collect();
    Ok(kto_reference_point(&policy, &reference))
}

pub fn micro_batch(
    policy: &Policy<'_>,
    batch: &[&EncodedKto],
    p: &KtoParams,
    r: &ReferenceOptions,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    let seqs: Vec<&EncodedExample> = batch.iter().map(|k| &k.example).collect();
    let mb = SequenceBatch::collate(&seqs, PAD_ID);
    let t = mb.to_tensors(env.device)?;
    let token_logps = policy.token_logprobs(
        ModelInput::Ids(&t.input_ids),
        &t.attention_mask,
        &t.input_ids,
        Some(&target_mask(&mb)),
    )?;
    let (logps, lens) = row_sums(&token_logps, &target_mask_tensor(&t.loss_mask)?)?;
    let n = batch.len();
    let reference = Tensor::from_vec(reference_logps(&seqs, r, env)?, n, env.device)?;
    let labels: Vec<f32> = batch.iter().map(|k| f32::from(u8::from(k.label))).collect();
    let desirable = Tensor::from_vec(labels, n, env.device)?;
    let (losses, rewards) = kto_loss(&logps, &reference, &desirable, info.kto_z, p)?;
    let scale = 1.0 / info.examples.max(1) as f64;
    let mut loss = losses.sum_all()?.affine(scale, 0.0)?;
    if p.sft_weight != 0.0 {
        let nll = logps.div(&lens)?.neg()?.mul(&desirable)?.sum_all()?;
        let sft = nll.affine(p.sft_weight * scale, 0.0)?;
        diag.total("loss_sft", &sft)?;
        loss = (loss + sft)?;
    }
    diag.set("kl", info.kto_z);
    // Means over the desirable (chosen) and undesirable (rejected) examples.
    let undesirable = (1.0 - &desirable)?;
    for (side, m) in [("chosen", &desirable), ("rejected", &undesirable)] {
        diag.mean(&format!("rewards/{side}"), &rewards.mul(m)?, m)?;
        diag.mean(&format!("logps/{side}"), &logps.detach().mul(m)?, m)?;
    }
    Ok(loss)
}
