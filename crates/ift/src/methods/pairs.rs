//! What the pairwise methods (DPO, ORPO, SimPO, TDPO) share: each pair's
//! chosen and rejected sequences run in one forward pass (rows `0..b` chosen,
//! `b..2b` rejected, padded to a common length); the per-pair losses are
//! divided by the step's pair count.

use candle_core::Tensor;

use super::diagnostics::pair_rewards;
use super::policy::Policy;
use super::ReferenceOptions;
use super::{row_sums, Diagnostics, StepEnv, StepInfo};
use crate::data::{
    EncodedExample, EncodedPreference, PreferenceBatch, SequenceTensors, Targets, PAD_ID,
};
use crate::loss::{token_logprobs, PairLogps, PairLoss};
use crate::model::ModelInput;
use crate::Result;

/// A micro-batch of pairs after the policy's forward pass.
pub struct PairForward {
    /// Summed policy log-probabilities and answer lengths.
    pub logps: PairLogps,
    /// The concatenated batch (chosen rows, then rejected rows).
    pub tensors: SequenceTensors,
    /// `(2b, t, vocab)` logits with a gradient path, when asked for (TDPO).
    pub logits: Option<Tensor>,
    /// `(2b, t − 1)` f32 target mask.
    pub mask: Tensor,
}

/// The policy's forward pass over a micro-batch of pairs; with `full_logits`
/// through the whole logits, keeping them.
pub fn pair_forward(
    policy: &Policy<'_>,
    pairs: &[&EncodedPreference],
    env: &StepEnv<'_>,
    full_logits: bool,
) -> Result<PairForward> {
    let b = pairs.len();
    let batch = PreferenceBatch::collate(pairs, PAD_ID).concatenated(PAD_ID);
    let t = batch.to_tensors(env.device)?;
    let targets = Targets::new(&batch, &t)?;
    let input = ModelInput::Ids(&t.input_ids);
    let (token_logps, logits) = if full_logits {
        let logits = policy.logits(input, &t.attention_mask)?;
        (token_logprobs(&logits, &t.input_ids)?, Some(logits))
    } else {
        let wanted = Some(targets.rows.as_slice());
        let logps = policy.token_logprobs(input, &t.attention_mask, &t.input_ids, wanted)?;
        (logps, None)
    };
    let mask = targets.mask;
    let (sums, lens) = row_sums(&token_logps, &mask)?;
    let logps = PairLogps {
        chosen: sums.narrow(0, 0, b)?,
        rejected: sums.narrow(0, b, b)?,
        chosen_len: lens.narrow(0, 0, b)?,
        rejected_len: lens.narrow(0, b, b)?,
    };
    Ok(PairForward {
        logps,
        tensors: t,
        logits,
        mask,
    })
}

/// `w·Σ_s (−log π(y_w,s)/|y_w,s|) / B`: the SFT term on the chosen answers.
pub fn sft_term(logps: &PairLogps, weight: f64, info: &StepInfo) -> Result<Option<Tensor>> {
    if weight == 0.0 {
        return Ok(None);
    }
    let (mean_chosen, _) = logps.averaged()?;
    Ok(Some(
        mean_chosen
            .sum_all()?
            .affine(-weight / info.examples.max(1) as f64, 0.0)?,
    ))
}

/// `Σ_s L_s / B` (+ the SFT term), and the reward figures.
fn finish(
    out: &PairLoss,
    logps: &PairLogps,
    sft: Option<Tensor>,
    info: &StepInfo,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    let loss = out
        .losses
        .sum_all()?
        .affine(1.0 / info.examples.max(1) as f64, 0.0)?;
    pair_rewards(
        diag,
        &out.chosen_rewards,
        &out.rejected_rewards,
        (&logps.chosen, &logps.rejected),
    )?;
    match sft {
        Some(s) => {
            diag.total("loss_sft", &s)?;
            Ok((loss + s)?)
        }
        None => Ok(loss),
    }
}

/// The pairs' reference log-probabilities, with the policy's answer lengths.
pub(super) fn pair_reference(
    pairs: &[&EncodedPreference],
    policy: &PairLogps,
    r: &ReferenceOptions,
    env: &StepEnv<'_>,
) -> Result<PairLogps> {
    let chosen: Vec<&EncodedExample> = pairs.iter().map(|p| &p.chosen).collect();
    let rejected: Vec<&EncodedExample> = pairs.iter().map(|p| &p.rejected).collect();
    let (c, rj) = (
        super::reference_logps(&chosen, r, env)?,
        super::reference_logps(&rejected, r, env)?,
    );
    let n = pairs.len();
    Ok(policy.with_logps(
        Tensor::from_vec(c, n, env.device)?,
        Tensor::from_vec(rj, n, env.device)?,
    ))
}

/// A pairwise objective's micro-batch: the policy's forward over both
/// answers, `loss` over the summed log-probabilities, then `Σ_s L_s / B`
/// with the SFT term weighted `sft_weight` on the chosen answers.
pub(super) fn pairwise(
    policy: &Policy<'_>,
    pairs: &[&EncodedPreference],
    sft_weight: f64,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
    loss: impl FnOnce(&PairLogps) -> Result<PairLoss>,
) -> Result<Tensor> {
    let f = pair_forward(policy, pairs, env, false)?;
    let out = loss(&f.logps)?;
    let sft = sft_term(&f.logps, sft_weight, info)?;
    finish(&out, &f.logps, sft, info, diag)
}
