//! IFT's options (`[objective]` with `kind = "ift"`), typed: λ's schedule, its
//! noise and the prediction rule each carry only the numbers they use.
//!
//! The TOML keys stay flat (`prediction = "topk"`, `top_k = 3`), as earlier
//! configs wrote them; `objective::IftWire` is that flat form.

use serde::{Deserialize, Serialize};

use super::loss::Propagation;
use super::predict::Prediction;
use super::weights::{PropagationItem, PropagationNorm, PropagationParams, PropagationSide};
use crate::loss::Normalize;

/// How λ moves over training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lambda {
    /// `λ` throughout (`lambda_schedule = "static"`, the reference's default).
    Static(f64),
    /// From `min` to `max` linearly over `warmup_steps` optimiser steps, then `max`.
    Linear {
        min: f64,
        max: f64,
        warmup_steps: u64,
    },
}

impl Lambda {
    /// λ at zero-based optimiser step `step`, before any noise: the schedule as a
    /// pure function (Frozen Lake uses it too).
    pub fn at(&self, step: u64) -> f64 {
        match *self {
            Lambda::Static(l) => l,
            Lambda::Linear {
                min,
                max,
                warmup_steps,
            } => {
                let frac = match warmup_steps {
                    0 => 1.0,
                    n => (step as f64 / n as f64).min(1.0),
                };
                min + (max - min) * frac
            }
        }
    }
}

/// Noise on λ per optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disturb {
    None,
    /// `λ ← λ·(1 + std·ε)`, `ε ~ N(0, 1)` drawn from `(seed, step)` (the reference's
    /// "normal disturbance").
    Normal {
        std: f64,
    },
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

/// IFT's options. Defaults are the paper's and the reference code's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IftParams {
    /// `sequence` (default: mean of per-sequence token means, as the reference) or `token`.
    pub normalize: Normalize,
    /// λ, the weight of the model's own prediction in the input embeddings:
    /// default static 0.2 (the paper's); 0 makes the inputs SFT's.
    pub lambda: Lambda,
    /// Default none.
    pub disturb: Disturb,
    /// Discount γ of relation propagation, in [0, 1]. Default 0.95 (the paper's);
    /// 0 turns propagation off.
    pub gamma: f64,
    /// `loss` (default), `logps` or `mask`.
    pub propagation_type: PropagationItem,
    /// `left` (default: later losses weigh on earlier tokens) or `right`.
    pub propagation_side: PropagationSide,
    /// `l1` (default), `l2`, `softmax` or `log`.
    pub propagation_norm: PropagationNorm,
    /// `reference` (default, the authors' code) or `paper_eq21` (the printed formula).
    pub propagation: Propagation,
    /// Stop gradient through the propagation weights. Default false, as the
    /// reference (the first author confirmed this is intended).
    pub detach_weights: bool,
    pub prediction: Prediction,
    pub embedding_grad: EmbeddingGrad,
}

impl Default for IftParams {
    fn default() -> Self {
        IftParams {
            normalize: Normalize::Sequence,
            lambda: Lambda::Static(0.2),
            disturb: Disturb::None,
            gamma: 0.95,
            propagation_type: PropagationItem::Loss,
            propagation_side: PropagationSide::Left,
            propagation_norm: PropagationNorm::L1,
            propagation: Propagation::Reference,
            detach_weights: false,
            prediction: Prediction::Greedy,
            embedding_grad: EmbeddingGrad::FrozenCopy,
        }
    }
}

impl IftParams {
    /// The relation-propagation settings.
    pub fn propagation_params(&self) -> PropagationParams {
        PropagationParams {
            item: self.propagation_type,
            side: self.propagation_side,
            norm: self.propagation_norm,
            gamma: self.gamma,
        }
    }

    /// λ at optimiser step `step` (zero-based): schedule, then noise drawn from
    /// `(seed, step)` alone. A pure function, so resumed runs see the same λ
    /// sequence. Only the noisy value is clamped to [0, 1] (noise can push it
    /// outside); configured values are range-checked when the config is read.
    pub fn lambda_at(&self, step: u64, seed: u64) -> f64 {
        let base = self.lambda.at(step);
        match self.disturb {
            Disturb::None => base,
            Disturb::Normal { std } => {
                (base * (1.0 + std * standard_normal(seed, step))).clamp(0.0, 1.0)
            }
        }
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
