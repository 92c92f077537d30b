//! TDPO's micro-batch: the policy's forward over both answers and the
//! reference model's (kept in memory, no graph or tape) over the same rows,
//! both as whole logits (TDPO needs the full next-token distributions), then
//! the per-sequence margins and sequential KLs of `loss.rs`.

mod loss;

pub use loss::{tdpo_loss, tdpo_terms, TdpoParams, TdpoTerms, TdpoVariant};

use candle_core::Tensor;

use super::diagnostics::pair_rewards;
use super::pairs::{pair_forward, sft_term};
use super::policy::Policy;
use super::{Diagnostics, StepEnv, StepInfo};
use crate::data::EncodedPreference;
use crate::model::ModelInput;
use crate::Result;

pub fn micro_batch(
    policy: &Policy<'_>,
    pairs: &[&EncodedPreference],
    p: &TdpoParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    let reference = env.reference.model.ok_or_else(|| {
        crate::Error::Train("TDPO needs the reference model in memory, and none was loaded".into())
    })?;
    // The sequential KL needs whole distributions: the policy's logits.
    let f = pair_forward(policy, pairs, env, true)?;
    let logits = f
        .logits
        .as_ref()
        .ok_or_else(|| crate::Error::Train("TDPO's forward kept no logits".into()))?;
    let t = &f.tensors;
    let ref_logits =
        crate::engine::forward_logits(reference, ModelInput::Ids(&t.input_ids), &t.attention_mask)?;
    let terms = tdpo_terms(logits, &ref_logits, &t.input_ids, &f.mask)?;
    let b = pairs.len();
    let half = |x: &Tensor, from: usize| x.narrow(0, from, b);
    let split = |from: usize| -> Result<TdpoTerms> {
        Ok(TdpoTerms {
            margin: half(&terms.margin, from)?,
            kl: half(&terms.kl, from)?,
            logps: half(&terms.logps, from)?,
        })
    };
    let (chosen, rejected) = (split(0)?, split(b)?);
    let (losses, rc, rr) = tdpo_loss(&chosen, &rejected, p)?;
    pair_rewards(diag, &rc, &rr, (&chosen.logps, &rejected.logps))?;
    diag.mean_of("kl/chosen", &chosen.kl)?;
    diag.mean_of("kl/rejected", &rejected.kl)?;
    let loss = losses
        .sum_all()?
        .affine(1.0 / info.examples.max(1) as f64, 0.0)?;
    match sft_term(&f.logps, p.sft_weight, info)? {
        Some(s) => Ok((loss + s)?),
        None => Ok(loss),
    }
}
