//! Held-out figures of a preference objective: its loss and reward metrics on
//! `data.eval`, graph-free, in evaluation batches of consecutive records (each
//! batch normalised on its own, and for KTO with its own mismatched pairs).

use std::collections::BTreeMap;

use crate::model::LlamaForCausalLM;
use crate::train::{step_passes, StepEnv, TrainData};
use crate::Result;

/// `eval_loss` (example-weighted mean of the batch losses) and every
/// diagnostic of the objective as `eval_<name>`, plus `eval_examples`.
pub fn evaluate_objective(
    model: &LlamaForCausalLM,
    eval: &TrainData,
    batch: usize,
    env: &StepEnv<'_>,
) -> Result<BTreeMap<String, f64>> {
    let model = model.detached();
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0usize;
    for chunk in eval.chunks(batch) {
        crate::interrupt::check("evaluation")?;
        let b = chunk.as_batch();
        let passes = step_passes(&model, b, batch, env, false)?;
        let n = b.len();
        *sums.entry("eval_loss".into()).or_default() += passes.loss * n as f64;
        for (k, v) in passes.extra {
            *sums.entry(format!("eval_{k}")).or_default() += v * n as f64;
        }
        total += n;
    }
    let mut out: BTreeMap<String, f64> = sums
        .into_iter()
        .map(|(k, v)| (k, v / total.max(1) as f64))
        .collect();
    out.insert("eval_examples".into(), total as f64);
    Ok(out)
}
