//! The objective's figures for `metrics.jsonl`, accumulated over a step's
//! micro-batches: totals (already-normalised partial losses) and means
//! (a sum and a count, divided at the end).

use std::collections::BTreeMap;

/// Accumulates named figures over micro-batches.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    totals: BTreeMap<String, f64>,
    means: BTreeMap<String, (f64, f64)>,
}

impl Diagnostics {
    /// Adds `value` to the total `name`.
    pub fn total(&mut self, name: &str, value: f64) {
        *self.totals.entry(name.to_string()).or_default() += value;
    }

    /// Sets `name` to `value` (a figure of the whole step, like λ).
    pub fn set(&mut self, name: &str, value: f64) {
        self.totals.insert(name.to_string(), value);
    }

    /// Adds `sum` over `count` items to the mean `name`.
    pub fn mean(&mut self, name: &str, sum: f64, count: f64) {
        let e = self.means.entry(name.to_string()).or_default();
        (e.0, e.1) = (e.0 + sum, e.1 + count);
    }

    /// Adds every value of `values` to the mean `name`.
    pub fn mean_of(&mut self, name: &str, values: &[f32]) {
        self.mean(
            name,
            values.iter().map(|&v| v as f64).sum(),
            values.len() as f64,
        );
    }

    /// The figures; a mean over no items is left out. `rewards/margin` is the
    /// difference of the reward means, as TRL logs it (for pairs this is also
    /// the mean of the per-pair margins).
    pub fn finish(self) -> BTreeMap<String, f64> {
        let mut out = self.totals;
        for (name, (sum, count)) in self.means {
            if count > 0.0 {
                out.insert(name, sum / count);
            }
        }
        if let (Some(c), Some(r)) = (out.get("rewards/chosen"), out.get("rewards/rejected")) {
            let margin = c - r;
            out.insert("rewards/margin".into(), margin);
        }
        out
    }
}

/// The reward figures of a batch of pairs (TRL's names): means over pairs.
pub fn pair_rewards(
    diag: &mut Diagnostics,
    chosen: &[f32],
    rejected: &[f32],
    logps: (&[f32], &[f32]),
) {
    diag.mean_of("rewards/chosen", chosen);
    diag.mean_of("rewards/rejected", rejected);
    let wins: Vec<f32> = chosen
        .iter()
        .zip(rejected)
        .map(|(c, r)| f32::from(u8::from(c > r)))
        .collect();
    diag.mean_of("rewards/accuracy", &wins);
    diag.mean_of("logps/chosen", logps.0);
    diag.mean_of("logps/rejected", logps.1);
}
