//! One optimiser step's forward and backward passes: micro-batches,
//! gradient accumulation, the step's loss and the objective's diagnostics.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use super::config::{EmbeddingGrad, ObjectiveConfig, ObjectiveKind};
use crate::data::{EncodedExample, SequenceBatch, SequenceTensors};
use crate::loss::{
    ift_loss, ift_weights, mixed_embeddings, predict_tokens, replace_responses, sft_loss,
    shift_predictions, token_coefficients, token_logprobs, StepTotals,
};
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// Padding id: never attended, never trained, so any valid id will do.
pub const PAD_ID: u32 = 0;

/// Where in the run a step is: λ and sampled predictions depend on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// Zero-based optimiser step.
    pub step: u64,
    pub seed: u64,
}

/// What one step's passes produced.
pub struct StepPasses {
    /// The step's loss (sum of the micro-batch losses, already normalised).
    pub loss: f64,
    /// Gradients of the trainable parameters only, summed over micro-batches.
    pub grads: GradStore,
    /// Real tokens in the step.
    pub tokens: usize,
    /// Trained target tokens in the step.
    pub trained_tokens: usize,
    /// Objective diagnostics for `metrics.jsonl` (IFT: `loss_sft`, `loss_mixed`,
    /// `lambda`, `pred_accuracy`, `neg_weight_frac`).
    pub extra: BTreeMap<String, f64>,
}

/// The loss mask shifted to targets: entry `i` of row `s` says whether
/// token `i + 1` trains (the layout of `token_logprobs`).
pub fn target_mask(batch: &SequenceBatch) -> Vec<Vec<bool>> {
    batch
        .loss_mask
        .iter()
        .map(|row| row.iter().skip(1).copied().collect())
        .collect()
}

/// Runs forward + backward over `batch` in micro-batches of `micro`.
/// Coefficients use the whole step's totals, so the split does not change
/// the result.
pub fn forward_backward(
    model: &LlamaForCausalLM,
    batch: &[&EncodedExample],
    micro: usize,
    objective: &ObjectiveConfig,
    ctx: StepContext,
    device: &Device,
) -> Result<StepPasses> {
    let totals = StepTotals {
        sequences: batch.len(),
        tokens: batch.iter().map(|e| e.num_trained()).sum(),
    };
    let vars: &[(String, Var)] = model.parameters().vars();
    let mut grads = GradStore::default();
    let (mut loss_sum, mut tokens) = (0f64, 0usize);
    let mut sums = IftSums::default();
    for chunk in batch.chunks(micro.max(1)) {
        let mb = SequenceBatch::collate(chunk, PAD_ID);
        let coef = token_coefficients(&target_mask(&mb), objective.normalize, totals, device)?;
        let t = mb.to_tensors(device)?;
        let loss = match objective.kind {
            ObjectiveKind::Sft => {
                let logits = model.forward(ModelInput::Ids(&t.input_ids), &t.attention_mask)?;
                sft_loss(&logits, &t.input_ids, &coef)?.loss
            }
            ObjectiveKind::Ift => ift_micro_batch(model, &t, &coef, objective, ctx, &mut sums)?,
        };
        let store = loss.backward()?;
        for (_, var) in vars {
            if let Some(g) = store.get(var.as_tensor()) {
                let sum = match grads.get(var.as_tensor()) {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                };
                grads.insert(var.as_tensor(), sum);
            }
        }
        loss_sum += loss.to_scalar::<f32>()? as f64;
        tokens += chunk.iter().map(|e| e.len()).sum::<usize>();
    }
    let extra = match objective.kind {
        ObjectiveKind::Sft => BTreeMap::new(),
        ObjectiveKind::Ift => sums.metrics(objective.lambda_at(ctx.step, ctx.seed)),
    };
    Ok(StepPasses {
        loss: loss_sum,
        grads,
        tokens,
        trained_tokens: totals.tokens,
        extra,
    })
}

/// IFT's diagnostics summed over a step's micro-batches.
#[derive(Default)]
struct IftSums {
    loss_sft: f64,
    loss_mixed: f64,
    correct: f64,
    negative: f64,
    positions: f64,
}

impl IftSums {
    fn metrics(&self, lambda: f64) -> BTreeMap<String, f64> {
        let share = |x: f64| {
            if self.positions > 0.0 {
                x / self.positions
            } else {
                0.0
            }
        };
        BTreeMap::from([
            ("loss_sft".into(), self.loss_sft),
            ("loss_mixed".into(), self.loss_mixed),
            ("lambda".into(), lambda),
            ("pred_accuracy".into(), share(self.correct)),
            ("neg_weight_frac".into(), share(self.negative)),
        ])
    }
}

/// One IFT micro-batch (see `loss/ift.rs` for the equations): a graph-free
/// teacher-forced pass for predictions, mixed embeddings, a forward pass
/// with gradient, propagation-weighted loss.
fn ift_micro_batch(
    model: &LlamaForCausalLM,
    t: &SequenceTensors,
    coef: &Tensor,
    objective: &ObjectiveConfig,
    ctx: StepContext,
    sums: &mut IftSums,
) -> Result<Tensor> {
    let lambda = objective.lambda_at(ctx.step, ctx.seed);
    let (ids, attention) = (&t.input_ids, &t.attention_mask);
    let seq = ids.dim(1)?;
    // No graph: the detached view records nothing, so this costs one forward.
    let logits0 = model.detached().forward(ModelInput::Ids(ids), attention)?;
    let predictions = predict_tokens(
        &logits0,
        &objective.prediction_params(),
        ctx.seed ^ ctx.step.rotate_left(17),
    )?;
    let mixed_ids = replace_responses(ids, &shift_predictions(&predictions, ids)?, &t.loss_mask)?;
    let embedding = match objective.embedding_grad {
        EmbeddingGrad::FrozenCopy => model.embed_tokens().detach(),
        EmbeddingGrad::Live => model.embed_tokens().clone(),
    };
    let embeds = mixed_embeddings(&embedding, ids, &mixed_ids, lambda)?;
    let logits = model.forward(ModelInput::Embeds(&embeds), attention)?;
    let token_loss = token_logprobs(&logits, ids)?.neg()?;
    let mask = t.loss_mask.narrow(1, 1, seq - 1)?;
    let params = objective.propagation_params();
    let weights = ift_weights(
        &token_loss,
        &mask,
        objective.propagation,
        &params,
        objective.detach_weights,
    )?;
    let loss = ift_loss(&token_loss, &weights, coef)?;

    // Diagnostics, all graph-free.
    let nll0 = token_logprobs(&logits0, ids)?.neg()?;
    sums.loss_sft += scalar(&nll0.mul(coef)?.sum_all()?)?;
    sums.loss_mixed += scalar(&token_loss.detach().mul(coef)?.sum_all()?)?;
    let greedy = logits0
        .argmax(candle_core::D::Minus1)?
        .narrow(1, 0, seq - 1)?;
    let hits = greedy
        .eq(&ids.narrow(1, 1, seq - 1)?)?
        .to_dtype(DType::F32)?;
    sums.correct += scalar(&hits.mul(&mask)?.sum_all()?)?;
    sums.positions += scalar(&mask.sum_all()?)?;
    // ∂L/∂ℓ_t: L as a function of ℓ alone, through the weights unless detached.
    let leaf = Var::from_tensor(&token_loss.detach())?;
    let w = ift_weights(
        leaf.as_tensor(),
        &mask,
        objective.propagation,
        &params,
        objective.detach_weights,
    )?;
    let grad = ift_loss(leaf.as_tensor(), &w, coef)?.backward()?;
    if let Some(g) = grad.get(leaf.as_tensor()) {
        let negative = g.lt(0f64)?.to_dtype(DType::F32)?.mul(&mask)?;
        sums.negative += scalar(&negative.sum_all()?)?;
    }
    Ok(loss)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()? as f64)
}
