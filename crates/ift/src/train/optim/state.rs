//! Saving and restoring optimizer state as named tensors, so a checkpoint written with
//! `state_tensors` and read back with `load_state` resumes bit-identically.
//!
//! Names follow torch's state keys: `<buffer>.<param>` (`exp_avg`, `exp_avg_sq`, `square_avg`,
//! `momentum_buffer`), `step.<param>` for each parameter's own step count (AdamW's bias
//! correction uses it, and it lags the global count for a parameter that missed gradients), and
//! `step` for the number of `Optimizer::step` calls. Steps are stored as i64 scalars, buffers as
//! f32 tensors of the parameter's shape.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor};

use super::{buffer_names, OptimError, Optimizer};

/// Per-parameter state; `buffers` follows the order of the rule's `BUFFERS` and is empty until
/// the rule first fills it.
#[derive(Debug, Default, Clone)]
pub(super) struct Slot {
    pub(super) step: u64,
    pub(super) buffers: Vec<Tensor>,
}

const GLOBAL_STEP: &str = "step";

impl Optimizer {
    /// The complete optimizer state as named tensors (cheap: tensors share storage, and the
    /// optimizer replaces rather than mutates its buffers, so these stay a valid snapshot).
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>, OptimError> {
        let device = self.vars.first().map(|(_, v)| v.device().clone());
        let device = device.unwrap_or(candle_core::Device::Cpu);
        let step = |n: u64| Tensor::new(n as i64, &device);
        let mut out = vec![(GLOBAL_STEP.to_string(), step(self.steps)?)];
        let names = buffer_names(&self.config);
        for ((param, _), slot) in self.vars.iter().zip(&self.slots) {
            let Some(slot) = slot else { continue };
            out.push((format!("step.{param}"), step(slot.step)?));
            for (buf, t) in names.iter().zip(&slot.buffers) {
                out.push((format!("{buf}.{param}"), t.clone()));
            }
        }
        Ok(out)
    }

    /// Replaces the state with one produced by `state_tensors` on an optimizer with the same
    /// config and parameter names. Every tensor must be used: a leftover name means the
    /// parameters do not match, which would otherwise silently restart some moments from zero.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<(), OptimError> {
        let bad = |msg: String| OptimError::BadState(msg);
        let read_step = |name: &str| -> Result<Option<u64>, OptimError> {
            let Some(t) = tensors.get(name) else {
                return Ok(None);
            };
            let n = t.to_dtype(DType::I64)?.to_scalar::<i64>();
            let n = n.map_err(|_| bad(format!("`{name}` is not a scalar")))?;
            u64::try_from(n)
                .map(Some)
                .map_err(|_| bad(format!("`{name}` is negative")))
        };
        let steps = read_step(GLOBAL_STEP)?.ok_or_else(|| bad(format!("no `{GLOBAL_STEP}`")))?;
        let names = buffer_names(&self.config);
        let mut used = HashSet::from([GLOBAL_STEP.to_string()]);
        let mut slots = Vec::with_capacity(self.vars.len());
        for (param, var) in &self.vars {
            let step_key = format!("step.{param}");
            let Some(step) = read_step(&step_key)? else {
                slots.push(None);
                continue;
            };
            used.insert(step_key);
            let mut buffers = Vec::with_capacity(names.len());
            for buf in names {
                let key = format!("{buf}.{param}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| bad(format!("no `{key}`")))?;
                if t.dims() != var.dims() {
                    let (got, want) = (t.dims(), var.dims());
                    return Err(bad(format!(
                        "`{key}` has shape {got:?}, parameter {want:?}"
                    )));
                }
                buffers.push(t.to_device(var.device())?.to_dtype(DType::F32)?);
                used.insert(key);
            }
            slots.push(Some(Slot { step, buffers }));
        }
        let mut extra: Vec<_> = tensors.keys().filter(|k| !used.contains(*k)).collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(bad(format!("unexpected tensors {extra:?}")));
        }
        self.slots = slots;
        self.steps = steps;
        Ok(())
    }
}
