//! IFT's micro-batch (see `loss.rs` for the equations): a graph-free
//! teacher-forced pass for predictions, mixed embeddings, a forward pass with
//! gradient, the propagation-weighted loss; and IFT's diagnostics
//! (`loss_sft`, `loss_mixed`, `lambda`, `pred_accuracy`, `neg_weight_frac`).

mod loss;
mod options;
mod predict;
mod weights;

pub use loss::{
    ift_loss, ift_weights, mixed_embeddings, replace_responses, shift_predictions, Propagation,
};
pub use options::{Disturb, EmbeddingGrad, IftParams, Lambda};
pub use predict::{predict_tokens, row_seed, Prediction};
pub use weights::{
    propagation_weights, weighted_loss, PropagationItem, PropagationNorm, PropagationParams,
    PropagationSide,
};

use candle_core::{DType, Tensor, Var};

use super::policy::Policy;
use super::{Diagnostics, StepEnv, StepInfo};
use crate::data::{EncodedExample, SequenceBatch, Targets, PAD_ID};
use crate::loss::{token_coefficients, token_logprobs};
use crate::model::ModelInput;
use crate::Result;

pub fn micro_batch(
    policy: &Policy<'_>,
    examples: &[&EncodedExample],
    p: &IftParams,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    let (ctx, model) = (env.ctx, policy.model);
    let mb = SequenceBatch::collate(examples, PAD_ID);
    let t = mb.to_tensors(env.device)?;
    let targets = Targets::new(&mb, &t)?;
    let coef = token_coefficients(&targets.rows, p.normalize, info.totals, env.device)?;
    let lambda = p.lambda_at(ctx.step, ctx.seed);
    let (ids, attention) = (&t.input_ids, &t.attention_mask);
    let seq = ids.dim(1)?;
    // No graph: this costs one forward.
    let rule = &p.prediction;
    // (predictions (b, t), the teacher-forced NLL (b, t − 1), its argmax (b, t),
    // the recorded pass when the training pass can reuse its first positions).
    // Mixing changes only response inputs: both passes agree on every
    // position before the batch's first response token, and the training
    // pass may reuse the prediction pass's activations there.
    let shared_len = mb
        .loss_mask
        .iter()
        .map(|m| m.iter().position(|&r| r).unwrap_or(m.len()))
        .min()
        .unwrap_or(0);
    let (predictions, nll0, greedy, shared) = match rule.is_greedy() {
        // The default: one chunked pass gives the argmax and the NLL, never
        // the whole (b, t, vocab) logits.
        true => {
            let (pred, logp0, prefix) = policy.greedy_no_grad_sharing(
                ModelInput::Ids(ids),
                attention,
                ids,
                Some(&targets.rows),
                shared_len,
            )?;
            (pred.clone(), logp0.neg()?, pred, prefix)
        }
        false => {
            let logits0 = policy.logits_no_grad(ModelInput::Ids(ids), attention)?;
            let step_seed = ctx.seed ^ ctx.step.rotate_left(17);
            let seeds: Vec<u64> = examples
                .iter()
                .map(|e| row_seed(step_seed, &e.input_ids))
                .collect();
            let pred = predict_tokens(&logits0, rule, &seeds)?;
            let nll0 = token_logprobs(&logits0, ids)?.neg()?;
            (pred, nll0, logits0.argmax(candle_core::D::Minus1)?, None)
        }
    };
    let mixed_ids = replace_responses(ids, &shift_predictions(&predictions, ids)?, &t.loss_mask)?;
    let embedding = match p.embedding_grad {
        EmbeddingGrad::FrozenCopy => model.embed_tokens().detach(),
        EmbeddingGrad::Live => model.embed_tokens().clone(),
    };
    let embeds = mixed_embeddings(&embedding, ids, &mixed_ids, lambda)?;
    let token_loss = policy
        .token_logprobs_after(
            shared,
            ModelInput::Embeds(&embeds),
            attention,
            ids,
            Some(&targets.rows),
        )?
        .neg()?;
    let mask = &targets.mask;
    let params = p.propagation_params();
    let weights = ift_weights(&token_loss, mask, p.propagation, &params, p.detach_weights)?;
    let loss = ift_loss(&token_loss, &weights, &coef)?;

    // Diagnostics, all graph-free.
    diag.set("lambda", lambda);
    diag.total("loss_sft", &nll0.mul(&coef)?)?;
    diag.total("loss_mixed", &token_loss.detach().mul(&coef)?)?;
    let greedy = greedy.narrow(1, 0, seq - 1)?;
    let hits = greedy.eq(&targets.ids)?.to_dtype(DType::F32)?;
    diag.mean("pred_accuracy", &hits.mul(mask)?, mask)?;
    // ∂L/∂ℓ_t: L as a function of ℓ alone, through the weights unless detached.
    let leaf = Var::from_tensor(&token_loss.detach())?;
    let w = ift_weights(
        leaf.as_tensor(),
        mask,
        p.propagation,
        &params,
        p.detach_weights,
    )?;
    let grad = ift_loss(leaf.as_tensor(), &w, &coef)?.backward()?;
    let negative = match grad.get(leaf.as_tensor()) {
        Some(g) => g.lt(0f64)?.to_dtype(DType::F32)?.mul(mask)?,
        None => mask.zeros_like()?,
    };
    diag.mean("neg_weight_frac", &negative, mask)?;
    Ok(loss)
}
