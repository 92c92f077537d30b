//! The objective's figures for `metrics.jsonl`, accumulated over a step's
//! micro-batches: totals (already-normalised partial losses) and means
//! (a sum and a count, divided at the end).
//!
//! Figures computed from tensors stay tensors on the step's device until
//! [`Diagnostics::finish`], which reads them all in one transfer: on a GPU a
//! figure read per micro-batch would stall the device each time.

use std::collections::BTreeMap;

use candle_core::{DType, Result, Tensor};

/// A figure: known on the host, or a scalar tensor not read yet.
#[derive(Debug, Clone)]
enum Figure {
    Host(f64),
    Device(Tensor),
}

impl Figure {
    fn add(self, other: Figure) -> Result<Figure> {
        Ok(match (self, other) {
            (Figure::Host(a), Figure::Host(b)) => Figure::Host(a + b),
            (Figure::Device(a), Figure::Device(b)) => Figure::Device((a + b)?),
            (Figure::Device(t), Figure::Host(v)) | (Figure::Host(v), Figure::Device(t)) => {
                Figure::Device(t.affine(1.0, v)?)
            }
        })
    }
}

fn device(t: &Tensor) -> Result<Figure> {
    Ok(Figure::Device(t.detach().to_dtype(DType::F32)?.sum_all()?))
}

/// Accumulates named figures over micro-batches.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    totals: BTreeMap<String, Figure>,
    means: BTreeMap<String, (Figure, Figure)>,
}

impl Diagnostics {
    fn add_total(&mut self, name: &str, f: Figure) -> Result<()> {
        let v = match self.totals.remove(name) {
            Some(old) => old.add(f)?,
            None => f,
        };
        self.totals.insert(name.to_string(), v);
        Ok(())
    }

    fn add_mean(&mut self, name: &str, sum: Figure, count: Figure) -> Result<()> {
        let v = match self.means.remove(name) {
            Some((s, c)) => (s.add(sum)?, c.add(count)?),
            None => (sum, count),
        };
        self.means.insert(name.to_string(), v);
        Ok(())
    }

    /// Adds the sum of `value`'s elements to the total `name`.
    pub fn total(&mut self, name: &str, value: &Tensor) -> Result<()> {
        self.add_total(name, device(value)?)
    }

    /// Sets `name` to `value` (a figure of the whole step, like λ).
    pub fn set(&mut self, name: &str, value: f64) {
        self.totals.insert(name.to_string(), Figure::Host(value));
    }

    /// Adds `sum` over `count` items (both summed over their elements) to the mean `name`.
    pub fn mean(&mut self, name: &str, sum: &Tensor, count: &Tensor) -> Result<()> {
        self.add_mean(name, device(sum)?, device(count)?)
    }

    /// Adds every element of `values` to the mean `name`.
    pub fn mean_of(&mut self, name: &str, values: &Tensor) -> Result<()> {
        let n = values.elem_count() as f64;
        self.add_mean(name, device(values)?, Figure::Host(n))
    }

    /// The figures, read from the device in one transfer; a mean over no
    /// items is left out. `rewards/margin` is the difference of the reward
    /// means, as TRL logs it (for pairs this is also the mean of the per-pair
    /// margins).
    pub fn finish(self) -> Result<BTreeMap<String, f64>> {
        let mut pending = Vec::new();
        let mut slot = |f: &Figure| match f {
            Figure::Host(v) => Err(*v),
            Figure::Device(t) => {
                pending.push(t.clone());
                Ok(pending.len() - 1)
            }
        };
        let totals: Vec<_> = self.totals.iter().map(|(n, f)| (n, slot(f))).collect();
        let means: Vec<_> = self
            .means
            .iter()
            .map(|(n, (s, c))| (n, slot(s), slot(c)))
            .collect();
        let read: Vec<f32> = match pending.is_empty() {
            true => Vec::new(),
            false => Tensor::stack(&pending, 0)?.to_vec1()?,
        };
        let value = |s: std::result::Result<usize, f64>| s.map_or_else(|v| v, |i| read[i] as f64);
        let mut out: BTreeMap<String, f64> = totals
            .into_iter()
            .map(|(n, s)| (n.clone(), value(s)))
            .collect();
        for (name, sum, count) in means {
            let count = value(count);
            if count > 0.0 {
                out.insert(name.clone(), value(sum) / count);
            }
        }
        if let (Some(c), Some(r)) = (out.get("rewards/chosen"), out.get("rewards/rejected")) {
            let margin = c - r;
            out.insert("rewards/margin".into(), margin);
        }
        Ok(out)
    }
}

/// The reward figures of a batch of pairs (TRL's names): means over pairs.
pub fn pair_rewards(
    diag: &mut Diagnostics,
    chosen: &Tensor,
    rejected: &Tensor,
    logps: (&Tensor, &Tensor),
) -> Result<()> {
    diag.mean_of("rewards/chosen", chosen)?;
    diag.mean_of("rewards/rejected", rejected)?;
    let wins = chosen.gt(rejected)?.to_dtype(DType::F32)?;
    diag.mean_of("rewards/accuracy", &wins)?;
    diag.mean_of("logps/chosen", logps.0)?;
    diag.mean_of("logps/rejected", logps.1)
}
