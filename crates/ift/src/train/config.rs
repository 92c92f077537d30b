//! `[train]` of the run configuration. Every field is documented with its
//! meaning, unit and why its default; the `Default` impl is the single source
//! of defaults. (`[objective]` is `crate::objective`.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::optim::{OptimizerConfig, OptimizerKind};
use super::schedule::{ScheduleConfig, ScheduleKind};

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run directory: metrics, checkpoints, `final/`. Default `runs/ift`.
    pub output_dir: PathBuf,
    /// Seed of everything random in the run (data order, IFT noise). Default 42.
    pub seed: u64,
    /// Passes over the training data. Default 3, as the IFT paper trains.
    pub epochs: u64,
    /// Stop after this many optimiser steps; 0 means `epochs` decides. Default 0.
    pub max_steps: u64,
    /// Sequences per optimiser step. Default 8.
    pub batch_size: usize,
    /// Sequences per forward/backward pass; `batch_size` must be a multiple
    /// of it (gradient accumulation). Default 8 (no accumulation); lower it
    /// when memory is short — the result does not change.
    pub micro_batch_size: usize,
    /// Peak learning rate. Default 1e-5, a common full fine-tuning rate for
    /// small models (the IFT paper used 5e-7 on 7B models).
    pub lr: f64,
    /// `adamw`, `rmsprop` (the IFT paper's, default) or `sgd`.
    pub optimizer: OptimizerKind,
    /// Weight decay. Default 0 (the IFT paper uses none).
    pub weight_decay: f64,
    /// Learning-rate schedule after warm-up: `constant`, `linear` or `cosine`
    /// (default, as the IFT paper).
    pub schedule: ScheduleKind,
    /// Warm-up length in optimiser steps; 0 means `warmup_ratio` decides. Default 0.
    pub warmup_steps: u64,
    /// Warm-up as a fraction of all optimiser steps. Default 0.1 (the paper's).
    pub warmup_ratio: f64,
    /// Global gradient-norm clip; 0 disables. Default 10, the IFT paper's.
    pub max_grad_norm: f64,
    /// Evaluate every this many optimiser steps (and at the end); 0: only at
    /// the end. Default 0.
    pub eval_every: u64,
    /// Also evaluate before the first step (a `step: 0` row), for a
    /// before/after comparison on the same held-out data. Default false.
    pub eval_at_start: bool,
    /// Benchmark tasks (`"FILE[:kind]"`, as `ift eval --task`) scored on the
    /// evaluation cadence; figures go to `metrics.jsonl` as
    /// `eval_<task>_<metric>`. Default: none.
    pub eval_tasks: Vec<String>,
    /// Records scored per task at each evaluation; 0: all. Default 100, so a
    /// benchmark curve costs minutes, not hours, on a CPU.
    pub eval_limit: usize,
    /// Save a checkpoint every this many optimiser steps; 0: only `final/`.
    /// Default 0.
    pub save_every: u64,
    /// Checkpoints kept on disk (oldest deleted first); 0 keeps all. Default 2.
    pub keep_last: usize,
    /// Consecutive steps with a non-finite loss or gradient (each skipped)
    /// after which the run stops. Default 5.
    pub max_bad_steps: u64,
    /// Directory of the reference log-probability cache (DPO, KTO), shared by
    /// runs and seeds. Default: `reference-cache/` beside `output_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_cache: Option<PathBuf>,
    /// Where the run computes: `cpu` (default), `cuda` (GPU 0) or `cuda:N`;
    /// CUDA needs a build with `--features cuda`. Part of the trajectory:
    /// another device rounds differently, so resuming on one needs `--force`.
    pub device: crate::device::DeviceSpec,
    /// `f32` (default) or `bf16`: mixed precision. With `bf16` the explicit
    /// engine casts the f32 master weights to bf16 for each matmul and keeps
    /// its activations in bf16, while norms, softmaxes, the log-softmax, the
    /// loss and the optimiser (weights, gradients, moments) stay f32
    /// (`docs/gpu.md`).
    pub dtype: TrainDtype,
    /// Let f32 matmuls on a CUDA device use TF32 tensor cores (10-bit
    /// mantissa products, f32 accumulation), as PyTorch's
    /// `allow_tf32`. Default false; no effect on the CPU or with bf16.
    pub tf32: bool,
}

/// `train.dtype`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainDtype {
    #[default]
    F32,
    Bf16,
}

impl std::str::FromStr for TrainDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(TrainDtype::F32),
            "bf16" => Ok(TrainDtype::Bf16),
            _ => Err(format!(
                "`{s}` is not a training dtype; use \"f32\" or \"bf16\""
            )),
        }
    }
}

impl std::fmt::Display for TrainDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainDtype::F32 => "f32",
            TrainDtype::Bf16 => "bf16",
        })
    }
}

impl TrainDtype {
    /// The dtype the engine multiplies in.
    pub fn dtype(self) -> candle_core::DType {
        match self {
            TrainDtype::F32 => candle_core::DType::F32,
            TrainDtype::Bf16 => candle_core::DType::BF16,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("runs/ift"),
            seed: 42,
            epochs: 3,
            max_steps: 0,
            batch_size: 8,
            micro_batch_size: 8,
            lr: 1e-5,
            optimizer: OptimizerKind::RmsProp,
            weight_decay: 0.0,
            schedule: ScheduleKind::Cosine,
            warmup_steps: 0,
            warmup_ratio: 0.1,
            max_grad_norm: 10.0,
            eval_every: 0,
            eval_at_start: false,
            eval_tasks: Vec::new(),
            eval_limit: 100,
            save_every: 0,
            keep_last: 2,
            max_bad_steps: 5,
            reference_cache: None,
            device: crate::device::DeviceSpec::Cpu,
            dtype: TrainDtype::F32,
            tf32: false,
        }
    }
}

impl TrainConfig {
    /// The optimiser settings this config implies (other hyperparameters at
    /// torch's defaults).
    pub fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            weight_decay: self.weight_decay,
            ..OptimizerConfig::default()
        }
    }

    /// Where the reference log-probability cache lives.
    pub fn reference_cache_dir(&self) -> PathBuf {
        self.reference_cache.clone().unwrap_or_else(|| {
            let parent = self.output_dir.parent().unwrap_or(std::path::Path::new(""));
            parent.join("reference-cache")
        })
    }

    /// The schedule settings this config implies.
    pub fn schedule_config(&self) -> ScheduleConfig {
        ScheduleConfig {
            kind: self.schedule,
            warmup_steps: self.warmup_steps,
            warmup_ratio: self.warmup_ratio,
        }
    }

    /// Checks the values no type can: returns `(field, message)` on error.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.batch_size == 0 {
            return Err(("train.batch_size", "must be at least 1".into()));
        }
        if self.micro_batch_size == 0 || !self.batch_size.is_multiple_of(self.micro_batch_size) {
            return Err((
                "train.micro_batch_size",
                format!(
                    "{} must be at least 1 and divide train.batch_size = {}",
                    self.micro_batch_size, self.batch_size
                ),
            ));
        }
        if self.epochs == 0 && self.max_steps == 0 {
            return Err((
                "train.epochs",
                "train.epochs and train.max_steps are both 0".into(),
            ));
        }
        super::optim::check_lr(self.lr).map_err(|m| ("train.lr", m))?;
        // The optimiser's and the schedule's own rules, under this section's keys.
        self.optimizer_config()
            .validate()
            .map_err(|(field, m)| (train_key(field), m))?;
        self.schedule_config()
            .validate()
            .map_err(|(field, m)| (train_key(field), m))?;
        crate::config::range::at_least(self.max_grad_norm, 0.0)
            .map_err(|m| ("train.max_grad_norm", format!("{m} (0 disables clipping)")))?;
        let why = "it is how many non-finite steps in a row stop the run";
        crate::config::range::count_at_least(self.max_bad_steps, 1, why)
            .map_err(|m| ("train.max_bad_steps", m))?;
        Ok(())
    }
}

/// The `[train]` key of an `OptimizerConfig` / `ScheduleConfig` field (those
/// `[train]` does not expose stay at valid defaults).
fn train_key(field: &str) -> &'static str {
    match field {
        "weight_decay" => "train.weight_decay",
        "warmup_ratio" => "train.warmup_ratio",
        "warmup_steps" => "train.warmup_steps",
        "kind" => "train.optimizer",
        _ => "train",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    fn with(edit: impl FnOnce(&mut TrainConfig)) -> Result<(), (&'static str, String)> {
        let mut c = TrainConfig::default();
        edit(&mut c);
        c.validate()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(TrainConfig::default().validate(), Ok(()));
    }

    #[test]
    fn floats_are_finite_and_in_range_boundaries_included() {
        type Field = fn(&mut TrainConfig) -> &mut f64;
        /// The key, its field, values accepted, values refused, the range as the message says it.
        type Rule = (
            &'static str,
            Field,
            &'static [f64],
            &'static [f64],
            &'static str,
        );
        let rules: [Rule; 4] = [
            (
                "train.lr",
                |c| &mut c.lr,
                &[0.0, 1e-5, 10.0],
                &[-1e-5],
                ">= 0",
            ),
            (
                "train.weight_decay",
                |c| &mut c.weight_decay,
                &[0.0, 0.1],
                &[-1.0],
                ">= 0",
            ),
            (
                "train.warmup_ratio",
                |c| &mut c.warmup_ratio,
                &[0.0, 0.5, 1.0],
                &[-0.1, 2.0],
                "in [0, 1]",
            ),
            (
                "train.max_grad_norm",
                |c| &mut c.max_grad_norm,
                &[0.0, 1.0, 1e9],
                &[-1.0],
                ">= 0",
            ),
        ];
        for (key, field, good, bad, range) in rules {
            for &v in good {
                assert_eq!(with(|c| *field(c) = v), Ok(()), "{key} = {v}");
            }
            for &v in bad.iter().chain(&NON_FINITE) {
                let (k, m) = with(|c| *field(c) = v).unwrap_err();
                assert_eq!(k, key, "{key} = {v}");
                assert!(
                    m.starts_with(&format!("{v} must be a finite number {range}")),
                    "{m}"
                );
            }
        }
    }

    #[test]
    fn the_optimizer_and_schedule_rules_are_theirs() {
        // One rule, one place: the message is the optimiser's / schedule's own.
        let c = TrainConfig {
            weight_decay: -1.0,
            ..TrainConfig::default()
        };
        let (_, m) = c.validate().unwrap_err();
        assert_eq!(Err(("weight_decay", m)), c.optimizer_config().validate());
        let c = TrainConfig {
            warmup_ratio: 2.0,
            ..TrainConfig::default()
        };
        let (_, m) = c.validate().unwrap_err();
        assert_eq!(Err(("warmup_ratio", m)), c.schedule_config().validate());
    }

    #[test]
    fn counts_that_cannot_be_zero() {
        assert_eq!(with(|c| c.max_bad_steps = 1), Ok(()));
        let (k, m) = with(|c| c.max_bad_steps = 0).unwrap_err();
        assert_eq!(k, "train.max_bad_steps");
        assert!(m.starts_with("0 must be at least 1"), "{m}");
        assert_eq!(
            with(|c| c.batch_size = 0).unwrap_err().0,
            "train.batch_size"
        );
        let (k, _) = with(|c| (c.epochs, c.max_steps) = (0, 0)).unwrap_err();
        assert_eq!(k, "train.epochs");
        assert_eq!(with(|c| (c.epochs, c.max_steps) = (0, 1)), Ok(()));
    }
}
