//! KTO (Ethayarajh et al., 2024): its options and loss (`loss.rs`), its
//! micro-batch and its reference point `z`, which comes from the whole
//! optimiser step's mismatched pairs, computed once per step without a graph,
//! before the micro-batches.

mod loss;

pub use loss::{kto_loss, kto_reference_point, KtoParams};

use candle_core::Tensor;

use super::policy::Policy;
use super::ReferenceOptions;
use super::{reference_logps, row_sums, Diagnostics, StepEnv, StepInfo};
use crate::data::{kto_kl_sequences, EncodedExample, EncodedKto, SequenceBatch, Targets, PAD_ID};
use crate::eval::score_sequences;
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

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
    let targets = Targets::new(&mb, &t)?;
    let token_logps = policy.token_logprobs(
        ModelInput::Ids(&t.input_ids),
        &t.attention_mask,
        &t.input_ids,
        Some(&targets.rows),
    )?;
    let (logps, lens) = row_sums(&token_logps, &targets.mask)?;
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
