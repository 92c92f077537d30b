//! Held-out figures of a preference objective: its loss and reward metrics on
//! `data.eval`, graph-free, in evaluation batches of consecutive records (each
//! batch normalised on its own, and for KTO with its own mismatched pairs).

use std::collections::BTreeMap;

use super::{step_passes, StepEnv};
use crate::data::TrainData;
use crate::model::LlamaForCausalLM;
use crate::Result;

/// Held-out figures of a preference objective.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveEval {
    /// The example-weighted mean of the batch losses.
    pub loss: f64,
    /// `eval_loss`, every diagnostic of the objective as `eval_<name>`, and
    /// `eval_examples`: the `metrics.jsonl` row's figures.
    pub figures: BTreeMap<String, f64>,
}

/// The objective's loss and diagnostics over `eval`, graph-free.
pub fn evaluate_objective(
    model: &LlamaForCausalLM,
    eval: &TrainData,
    batch: usize,
    env: &StepEnv<'_>,
) -> Result<ObjectiveEval> {
    let model = model.detached();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let (mut loss, mut total) = (0.0, 0usize);
    for chunk in eval.chunks(batch) {
        crate::interrupt::check("evaluation")?;
        let b = chunk.as_batch();
        let passes = step_passes(&model, b, batch, env, false)?;
        let n = b.len();
        loss += passes.loss * n as f64;
        for (k, v) in passes.extra {
            *sums.entry(format!("eval_{k}")).or_default() += v * n as f64;
        }
        total += n;
    }
    let per = |v: f64| v / total.max(1) as f64;
    let mut figures: BTreeMap<String, f64> = sums.into_iter().map(|(k, v)| (k, per(v))).collect();
    figures.insert("eval_loss".into(), per(loss));
    figures.insert("eval_examples".into(), total as f64);
    Ok(ObjectiveEval {
        loss: per(loss),
        figures,
    })
}
