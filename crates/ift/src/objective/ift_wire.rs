//! `[objective]` with `kind = "ift"` as TOML has it: flat keys, every one
//! optional, so a key the chosen mode does not use is an error instead of
//! being ignored. [`IftWire::resolve`] gives the typed `methods::ift::IftParams`.

use serde::{Deserialize, Serialize};

use super::fields::{check_range, FieldError};
use crate::loss::Normalize;
use crate::methods::ift::{
    Disturb, EmbeddingGrad, IftParams, Lambda, Prediction, Propagation, PropagationItem,
    PropagationNorm, PropagationSide,
};

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
