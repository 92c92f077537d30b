//! IFT's options (`[objective]` with `kind = "ift"`), typed: λ's schedule, its
//! noise and the prediction rule each carry only the numbers they use.
//!
//! The TOML keys stay flat (`prediction = "topk"`, `top_k = 3`), as earlier
//! configs wrote them; [`IftWire`] is that flat form, and a key that the chosen
//! mode does not use is an error instead of being ignored.

use serde::{Deserialize, Serialize};

use super::fields::{check_range, FieldError};
use crate::loss::{
    Normalize, Prediction, Propagation, PropagationItem, PropagationNorm, PropagationParams,
    PropagationSide,
};

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

/// `objective.prediction`: the rule's name on the wire (its options are
/// separate keys; [`Prediction`] is the typed rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionMode {
    /// `argmax` (the reference's default). Deterministic.
    #[default]
    Greedy,
    /// The `top_k`-th most likely token (the reference's "top-k": with
    /// `top_k = 1` it is greedy). Deterministic.
    Topk,
    /// A sample from the smallest set of tokens whose probability (at
    /// `temperature`) reaches `top_p`. Seeded.
    Nucleus,
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

/// `objective.lambda_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaSchedule {
    #[default]
    Static,
    Linear,
}

/// `objective.lambda_disturb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LambdaDisturb {
    #[default]
    None,
    Normal,
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

/// The flat TOML form of [`IftParams`]: every key optional, so that a key the
/// chosen mode does not use can be told apart from one left out.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IftWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_schedule: Option<LambdaSchedule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_lambda: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lambda: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_warmup_steps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_disturb: Option<LambdaDisturb>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disturb_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_type: Option<PropagationItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_side: Option<PropagationSide>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation_norm: Option<PropagationNorm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detach_weights: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<PredictionMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_grad: Option<EmbeddingGrad>,
}

/// A key given although `mode` does not use it; `key` is the hint shown.
fn unused(key: &str, set: &[(&str, bool)], mode_key: &str, mode: &str) -> Result<(), FieldError> {
    match set.iter().find(|(_, given)| *given) {
        Some((k, _)) => Err(FieldError::new(
            format!("objective.{k}"),
            format!("is not used with objective.{mode_key} = \"{mode}\" ({key})"),
        )),
        None => Ok(()),
    }
}

impl IftWire {
    /// Checks ranges and that every given key is used by the chosen modes.
    pub fn resolve(self) -> Result<IftParams, FieldError> {
        let d = IftParams::default();
        let unit = |k: &str, v: f64| check_range(k, v, 0.0, 1.0, false).map(|_| v);
        let lambda = match self.lambda_schedule.unwrap_or_default() {
            LambdaSchedule::Static => {
                let keys = [
                    ("min_lambda", self.min_lambda.is_some()),
                    ("max_lambda", self.max_lambda.is_some()),
                    ("lambda_warmup_steps", self.lambda_warmup_steps.is_some()),
                ];
                unused(
                    "the linear schedule's keys",
                    &keys,
                    "lambda_schedule",
                    "static",
                )?;
                Lambda::Static(unit("lambda", self.lambda.unwrap_or(0.2))?)
            }
            LambdaSchedule::Linear => {
                unused(
                    "use min_lambda / max_lambda",
                    &[("lambda", self.lambda.is_some())],
                    "lambda_schedule",
                    "linear",
                )?;
                Lambda::Linear {
                    min: unit("min_lambda", self.min_lambda.unwrap_or(0.0))?,
                    max: unit("max_lambda", self.max_lambda.unwrap_or(0.2))?,
                    warmup_steps: self.lambda_warmup_steps.unwrap_or(150),
                }
            }
        };
        let disturb = match self.lambda_disturb.unwrap_or_default() {
            LambdaDisturb::None => {
                unused(
                    "disturb_std needs lambda_disturb = \"normal\"",
                    &[("disturb_std", self.disturb_std.is_some())],
                    "lambda_disturb",
                    "none",
                )?;
                Disturb::None
            }
            LambdaDisturb::Normal => {
                let std = self.disturb_std.unwrap_or(0.5);
                check_range("disturb_std", std, 0.0, f64::INFINITY, false)?;
                Disturb::Normal { std }
            }
        };
        let (k, p, t) = (
            self.top_k.is_some(),
            self.top_p.is_some(),
            self.temperature.is_some(),
        );
        let prediction = match self.prediction.unwrap_or_default() {
            PredictionMode::Greedy => {
                unused(
                    "top_k needs \"topk\", top_p / temperature need \"nucleus\"",
                    &[("top_k", k), ("top_p", p), ("temperature", t)],
                    "prediction",
                    "greedy",
                )?;
                Prediction::Greedy
            }
            PredictionMode::Topk => {
                unused(
                    "top_p / temperature need \"nucleus\"",
                    &[("top_p", p), ("temperature", t)],
                    "prediction",
                    "topk",
                )?;
                let k = self.top_k.unwrap_or(1);
                if k == 0 {
                    return Err(FieldError::new(
                        "objective.top_k",
                        "0 is out of range: must be >= 1 (1 is greedy)",
                    ));
                }
                Prediction::TopK { k }
            }
            PredictionMode::Nucleus => {
                unused(
                    "top_k needs \"topk\"",
                    &[("top_k", k)],
                    "prediction",
                    "nucleus",
                )?;
                let top_p = self.top_p.unwrap_or(0.9);
                check_range("top_p", top_p, 0.0, 1.0, true)?;
                let temperature = self.temperature.unwrap_or(1.0);
                check_range("temperature", temperature, 0.0, f64::INFINITY, true)?;
                Prediction::Nucleus { top_p, temperature }
            }
        };
        Ok(IftParams {
            normalize: self.normalize.unwrap_or(d.normalize),
            lambda,
            disturb,
            gamma: unit("gamma", self.gamma.unwrap_or(d.gamma))?,
            propagation_type: self.propagation_type.unwrap_or(d.propagation_type),
            propagation_side: self.propagation_side.unwrap_or(d.propagation_side),
            propagation_norm: self.propagation_norm.unwrap_or(d.propagation_norm),
            propagation: self.propagation.unwrap_or(d.propagation),
            detach_weights: self.detach_weights.unwrap_or(d.detach_weights),
            prediction,
            embedding_grad: self.embedding_grad.unwrap_or(d.embedding_grad),
        })
    }
}

impl From<&IftParams> for IftWire {
    /// Every key the modes use, explicitly (the resolved config shows defaults).
    fn from(p: &IftParams) -> Self {
        let mut w = IftWire {
            normalize: Some(p.normalize),
            gamma: Some(p.gamma),
            propagation_type: Some(p.propagation_type),
            propagation_side: Some(p.propagation_side),
            propagation_norm: Some(p.propagation_norm),
            propagation: Some(p.propagation),
            detach_weights: Some(p.detach_weights),
            embedding_grad: Some(p.embedding_grad),
            ..IftWire::default()
        };
        match p.lambda {
            Lambda::Static(l) => {
                (w.lambda_schedule, w.lambda) = (Some(LambdaSchedule::Static), Some(l))
            }
            Lambda::Linear {
                min,
                max,
                warmup_steps,
            } => {
                w.lambda_schedule = Some(LambdaSchedule::Linear);
                (w.min_lambda, w.max_lambda, w.lambda_warmup_steps) =
                    (Some(min), Some(max), Some(warmup_steps));
            }
        }
        match p.disturb {
            Disturb::None => w.lambda_disturb = Some(LambdaDisturb::None),
            Disturb::Normal { std } => {
                (w.lambda_disturb, w.disturb_std) = (Some(LambdaDisturb::Normal), Some(std))
            }
        }
        match p.prediction {
            Prediction::Greedy => w.prediction = Some(PredictionMode::Greedy),
            Prediction::TopK { k } => {
                (w.prediction, w.top_k) = (Some(PredictionMode::Topk), Some(k))
            }
            Prediction::Nucleus { top_p, temperature } => {
                (w.prediction, w.top_p, w.temperature) = (
                    Some(PredictionMode::Nucleus),
                    Some(top_p),
                    Some(temperature),
                );
            }
        }
        w
    }
}
