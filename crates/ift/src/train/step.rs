//! One optimiser step's forward and backward passes: micro-batches, gradient
//! accumulation, the step's loss and the objective's diagnostics. The
//! objectives' micro-batch losses are in `objectives/`.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Var};

use crate::data::EncodedExample;
use crate::data::StepBatch;
pub use crate::data::{target_mask, PAD_ID};
pub use crate::methods::StepContext;
use crate::methods::{micro_batch_loss, step_info, Diagnostics, Reference, StepEnv};
use crate::methods::{Engine, Policy};
use crate::model::LlamaForCausalLM;
use crate::objective::Objective;
use crate::Result;

/// What one step's passes produced.
pub struct StepPasses {
    /// The step's loss (sum of the micro-batch losses, already normalised).
    pub loss: f64,
    /// Gradients of the trainable parameters only, summed over micro-batches
    /// (empty when the passes ran without backward).
    pub grads: GradStore,
    /// Real tokens in the step.
    pub tokens: usize,
    /// Trained target tokens in the step.
    pub trained_tokens: usize,
    /// Objective diagnostics for `metrics.jsonl` (IFT: `loss_sft`, `loss_mixed`,
    /// `lambda`, `pred_accuracy`, `neg_weight_frac`; preference objectives:
    /// `rewards/*`, `logps/*`, KTO's `kl`).
    pub extra: BTreeMap<String, f64>,
}

/// Forward + backward of SFT or IFT over `batch` in micro-batches of `micro`,
/// on `engine`.
pub fn forward_backward(
    model: &LlamaForCausalLM,
    batch: &[&EncodedExample],
    micro: usize,
    objective: &Objective,
    ctx: StepContext,
    device: &Device,
    engine: Engine,
) -> Result<StepPasses> {
    let env = StepEnv {
        objective,
        reference: Reference::default(),
        ctx,
        device,
        engine,
    };
    step_passes(model, StepBatch::Sequences(batch), micro, &env, true)
}

/// Runs the objective over `batch` in micro-batches of `micro`, with backward
/// when `backward` is set (training) and without (evaluation). Coefficients
/// use the whole step's totals, so the split does not change the result.
pub fn step_passes(
    model: &LlamaForCausalLM,
    batch: StepBatch<'_>,
    micro: usize,
    env: &StepEnv<'_>,
    backward: bool,
) -> Result<StepPasses> {
    let info = step_info(model, batch, micro, env)?;
    let vars: &[(String, Var)] = model.parameters().vars();
    let mut grads = GradStore::default();
    let mut diag = Diagnostics::default();
    for (i, mb) in chunks(batch, micro.max(1)).into_iter().enumerate() {
        if backward {
            crate::interrupt::check("a training step")?;
        }
        // LoRA dropout while training only, its masks a pure function of
        // (seed, step, micro-batch) so that resuming is exact.
        let model = &model.with_dropout_if(backward, env.ctx.seed, env.ctx.step, i);
        let policy = Policy::new(model, env.engine, backward);
        let loss = micro_batch_loss(&policy, mb, &info, env, &mut diag)?;
        if backward {
            let store = policy.backward(&loss)?;
            for (_, var) in vars {
                if let Some(g) = store.get(var.as_tensor()) {
                    let sum = match grads.get(var.as_tensor()) {
                        Some(acc) => (acc + g)?,
                        None => g.clone(),
                    };
                    grads.insert(var.as_tensor(), sum);
                }
            }
        }
        // Summed on the device, read with the other figures (one transfer).
        diag.total("loss", &loss)?;
    }
    let mut extra = diag.finish()?;
    Ok(StepPasses {
        loss: extra.remove("loss").unwrap_or(0.0),
        grads,
        tokens: batch.tokens(),
        trained_tokens: batch.trained_tokens(),
        extra,
    })
}

/// Consecutive micro-batches of `micro` examples (pairs stay whole).
fn chunks(batch: StepBatch<'_>, micro: usize) -> Vec<StepBatch<'_>> {
    match batch {
        StepBatch::Sequences(v) => v.chunks(micro).map(StepBatch::Sequences).collect(),
        StepBatch::Pairs(v) => v.chunks(micro).map(StepBatch::Pairs).collect(),
        StepBatch::Unpaired(v) => v.chunks(micro).map(StepBatch::Unpaired).collect(),
    }
}
