//! `[train]` and `[objective]` of the run configuration. Every field is
//! documented with its meaning, unit and why its default; `Default` impls are
//! the single source of defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::optim::{OptimizerConfig, OptimizerKind};
use super::schedule::{ScheduleConfig, ScheduleKind};
use crate::loss::{
    Normalize, PredictionMode, PredictionParams, Propagation, PropagationItem, PropagationNorm,
    PropagationParams, PropagationSide,
};

/// Which objective trains the model (`objective.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveKind {
    /// Supervised fine-tuning: teacher-forced NLL of the answer tokens.
    #[default]
    Sft,
    /// Intuitive Fine-Tuning: temporal residual connection + relation
    /// propagation (`docs/ift.md`).
    Ift,
}

/// How λ moves over training (`objective.lambda_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaSchedule {
    /// `λ = objective.lambda` throughout (the reference's default).
    #[default]
    Static,
    /// From `min_lambda` to `max_lambda` linearly over `lambda_warmup_steps`
    /// optimiser steps, then `max_lambda`.
    Linear,
}

/// Noise on λ (`objective.lambda_disturb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaDisturb {
    /// No noise (default).
    #[default]
    None,
    /// `λ ← λ·(1 + disturb_std·ε)`, `ε ~ N(0, 1)` drawn once per optimiser
    /// step from the run's seed (the reference's "normal disturbance").
    Normal,
}

/// Where IFT's mixing embedding comes from (`objective.embedding_grad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingGrad {
    /// A frozen copy of the input embedding, refreshed every step, as the
    /// reference: the input path gives the embedding no gradient (with tied
    /// embeddings it still learns through the output head). Default.
    #[default]
    FrozenCopy,
    /// The live embedding: gradient flows into it through both lookups.
    Live,
}

/// `[objective]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveConfig {
    /// The training objective. Default `sft`.
    pub kind: ObjectiveKind,
    /// How token losses are averaged over an optimiser step: `sequence`
    /// (mean of per-sequence token means, as the IFT reference trains; the
    /// default) or `token` (one token mean over the step).
    pub normalize: Normalize,
    /// IFT: mixing weight λ of the model's own prediction in the input
    /// embeddings. Default 0.2, the paper's; 0 makes the inputs SFT's.
    pub lambda: f64,
    /// IFT: `static` (default) or `linear` (from `min_lambda` to `max_lambda`).
    pub lambda_schedule: LambdaSchedule,
    /// IFT, linear schedule: λ at step 0. Default 0.
    pub min_lambda: f64,
    /// IFT, linear schedule: λ after the ramp. Default 0.2.
    pub max_lambda: f64,
    /// IFT, linear schedule: ramp length in optimiser steps. Default 150,
    /// the reference's (its `warmup_steps`, not the learning-rate warm-up).
    pub lambda_warmup_steps: u64,
    /// IFT: `none` (default) or `normal` noise on λ per step.
    pub lambda_disturb: LambdaDisturb,
    /// IFT, normal disturbance: σ. Default 0.5, the reference's.
    pub disturb_std: f64,
    /// IFT: discount γ of relation propagation. Default 0.95, the paper's; 0
    /// turns propagation off (all-ones weights).
    pub gamma: f64,
    /// IFT: what is propagated: `loss` (default), `logps` or `mask`.
    pub propagation_type: PropagationItem,
    /// IFT: `left` (default: later losses weigh on earlier tokens) or `right`.
    pub propagation_side: PropagationSide,
    /// IFT: `l1` (default), `l2`, `softmax` or `log`.
    pub propagation_norm: PropagationNorm,
    /// IFT: `reference` (default, the authors' code) or `paper_eq21` (the
    /// paper's printed formula, undiscounted and unnormalised).
    pub propagation: Propagation,
    /// IFT: stop gradient through the propagation weights. Default false, as
    /// the reference (the first author confirmed this is intended).
    pub detach_weights: bool,
    /// IFT: `greedy` (default), `topk` (the `top_k`-th best) or `nucleus`.
    pub prediction: PredictionMode,
    /// IFT, `topk`: which rank is taken. Default 1 (= greedy).
    pub top_k: usize,
    /// IFT, `nucleus`: probability mass kept. Default 0.9.
    pub top_p: f64,
    /// IFT, `nucleus`: sampling temperature. Default 1.
    pub temperature: f64,
    /// IFT: `frozen_copy` (default, as the reference) or `live`.
    pub embedding_grad: EmbeddingGrad,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            kind: ObjectiveKind::Sft,
            normalize: Normalize::Sequence,
            lambda: 0.2,
            lambda_schedule: LambdaSchedule::Static,
            min_lambda: 0.0,
            max_lambda: 0.2,
            lambda_warmup_steps: 150,
            lambda_disturb: LambdaDisturb::None,
            disturb_std: 0.5,
            gamma: 0.95,
            propagation_type: PropagationItem::Loss,
            propagation_side: PropagationSide::Left,
            propagation_norm: PropagationNorm::L1,
            propagation: Propagation::Reference,
            detach_weights: false,
            prediction: PredictionMode::Greedy,
            top_k: 1,
            top_p: 0.9,
            temperature: 1.0,
            embedding_grad: EmbeddingGrad::FrozenCopy,
        }
    }
}

impl ObjectiveConfig {
    /// The relation-propagation settings.
    pub fn propagation_params(&self) -> PropagationParams {
        PropagationParams {
            item: self.propagation_type,
            side: self.propagation_side,
            norm: self.propagation_norm,
            gamma: self.gamma,
        }
    }

    /// The prediction rule's settings.
    pub fn prediction_params(&self) -> PredictionParams {
        PredictionParams {
            mode: self.prediction,
            top_k: self.top_k,
            top_p: self.top_p,
            temperature: self.temperature,
        }
    }

    /// λ at optimiser step `step` (zero-based): schedule, then noise drawn
    /// from `(seed, step)` alone, then clamped to [0, 1]. A pure function,
    /// so resumed runs see the same λ sequence.
    pub fn lambda_at(&self, step: u64, seed: u64) -> f64 {
        let base = match self.lambda_schedule {
            LambdaSchedule::Static => self.lambda,
            LambdaSchedule::Linear => {
                let frac = match self.lambda_warmup_steps {
                    0 => 1.0,
                    n => (step as f64 / n as f64).min(1.0),
                };
                self.min_lambda + (self.max_lambda - self.min_lambda) * frac
            }
        };
        let noisy = match self.lambda_disturb {
            LambdaDisturb::None => base,
            LambdaDisturb::Normal => base * (1.0 + self.disturb_std * standard_normal(seed, step)),
        };
        noisy.clamp(0.0, 1.0)
    }
}

/// One N(0, 1) draw determined by `(seed, step)`.
fn standard_normal(seed: u64, step: u64) -> f64 {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed ^ step.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x1F7);
    rand_distr::StandardNormal.sample(&mut rng)
}

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
            eval_tasks: Vec::new(),
            eval_limit: 100,
            save_every: 0,
            keep_last: 2,
            max_bad_steps: 5,
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
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err((
                "train.lr",
                format!("{} must be a finite number >= 0", self.lr),
            ));
        }
        Ok(())
    }
}
