//! Optimizers with PyTorch semantics over a list of named candle `Var`s.
//!
//! Each rule is one file holding one update function that reproduces the single-tensor code path
//! of `torch.optim` (`adamw.rs`, `rmsprop.rs`, `sgd.rs`). This file owns what they share: the
//! config and the loop over parameters; `state.rs` saves and restores the per-parameter state
//! for bit-identical resume.
//!
//! The update runs in f32 whatever the parameters' dtype: parameter and gradient are upcast, the
//! moments are kept in f32, and the new value is cast back when written into the `Var`.

mod adamw;
mod fused;
mod rmsprop;
mod sgd;
mod state;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The update rule (`train.optimizer` in the TOML config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// `torch.optim.AdamW`: Adam with decoupled weight decay and bias correction.
    AdamW,
    /// `torch.optim.RMSprop` with no momentum, not centred: the IFT paper's optimizer, hence the
    /// default.
    #[default]
    RmsProp,
    /// `torch.optim.SGD` with heavy-ball momentum (dampening 0, not Nesterov).
    Sgd,
}

/// Optimizer hyperparameters. Fields that a rule does not use are ignored by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Which update rule. Default `rmsprop`, as the IFT paper trains.
    pub kind: OptimizerKind,
    /// Weight decay coefficient. AdamW decays the weights directly (`p -= lr * wd * p`), RMSprop
    /// and SGD add `wd * p` to the gradient, as torch does. Default 0: the IFT paper uses none,
    /// and it is also `transformers`' default.
    pub weight_decay: f64,
    /// AdamW: decay of the first-moment average. Default 0.9 (torch's).
    pub beta1: f64,
    /// AdamW: decay of the second-moment average. Default 0.999 (torch's).
    pub beta2: f64,
    /// AdamW and RMSprop: added to the denominator after the square root, so a parameter with a
    /// vanishing gradient history does not divide by zero. Default 1e-8 (torch's for both).
    pub eps: f64,
    /// RMSprop: decay of the squared-gradient average. Default 0.99 (torch's, the paper's).
    pub alpha: f64,
    /// SGD: momentum factor; 0 disables the momentum buffer. Default 0.9, the usual choice when
    /// SGD is used for fine-tuning (torch's own default is 0).
    pub momentum: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::default(),
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            alpha: 0.99,
            momentum: 0.9,
        }
    }
}

/// Errors from the optimizer, the schedule and gradient clipping.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("invalid optimizer setting: {0}")]
    InvalidConfig(String),
    #[error("parameter `{0}` is given to the optimizer twice")]
    DuplicateParam(String),
    #[error("learning rate {0} is not a finite number >= 0")]
    InvalidLr(f64),
    #[error("optimizer state does not fit the parameters: {0}")]
    BadState(String),
    #[error("updating parameter `{param}` failed")]
    Update {
        param: String,
        #[source]
        source: candle_core::Error,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One optimizer over named parameters, holding lazily created per-parameter state exactly as
/// torch does (state appears at a parameter's first gradient).
pub struct Optimizer {
    config: OptimizerConfig,
    vars: Vec<(String, Var)>,
    /// One entry per var, `None` until that var first receives a gradient.
    slots: Vec<Option<state::Slot>>,
    /// Number of `step` calls, saved as `step` in the state.
    steps: u64,
}

impl Optimizer {
    /// Builds the optimizer; parameter names must be unique (they key the saved state).
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self, OptimError> {
        validate(&config)?;
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &vars {
            if !seen.insert(name.as_str()) {
                return Err(OptimError::DuplicateParam(name.clone()));
            }
        }
        let slots = vars.iter().map(|_| None).collect();
        Ok(Self {
            config,
            vars,
            slots,
            steps: 0,
        })
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The parameters in the order given to `new`, e.g. for [`crate::train::clip_grad_norm`].
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Number of optimizer steps taken, including any restored by `load_state`.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Applies one update with learning rate `lr` (the schedule owns the rate, so it is passed in
    /// per step). A var with no gradient in `grads` is skipped and its state left untouched.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<(), OptimError> {
        check_lr(lr).map_err(|_| OptimError::InvalidLr(lr))?;
        let cfg = &self.config;
        for ((name, var), slot) in self.vars.iter().zip(self.slots.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let slot = slot.get_or_insert_with(state::Slot::default);
            update_var(cfg, lr, var, grad, slot).map_err(|source| OptimError::Update {
                param: name.clone(),
                source,
            })?;
        }
        self.steps += 1;
        Ok(())
    }
}

/// One parameter's update, written into the var in the var's dtype.
fn update_var(
    cfg: &OptimizerConfig,
    lr: f64,
    var: &Var,
    grad: &Tensor,
    slot: &mut state::Slot,
) -> candle_core::Result<()> {
    // Detached (which copies nothing): the state must never hold on to an autograd graph, or
    // each step's graph would stay alive through the moments of the next.
    let param = var.as_detached_tensor().to_dtype(DType::F32)?;
    let grad = grad.detach().to_dtype(DType::F32)?;
    slot.step += 1;
    let bufs = &mut slot.buffers;
    // f32 on the CPU: rewrite the moments and the parameter in place, the
    // same arithmetic in far fewer passes (`fused.rs`).
    let adaptive = matches!(cfg.kind, OptimizerKind::AdamW | OptimizerKind::RmsProp);
    if adaptive && fused::applies(&[var.as_tensor(), &grad]) {
        if bufs.is_empty() {
            *bufs = buffer_names(cfg)
                .iter()
                .map(|_| param.zeros_like())
                .collect::<candle_core::Result<_>>()?;
        }
        if fused::applies(&bufs.iter().collect::<Vec<_>>()) {
            return match cfg.kind {
                OptimizerKind::AdamW => {
                    fused::adamw(cfg, lr, slot.step, var.as_tensor(), &grad, bufs)
                }
                _ => fused::rmsprop(cfg, lr, var.as_tensor(), &grad, bufs),
            };
        }
    }
    let new = match cfg.kind {
        OptimizerKind::AdamW => adamw::update(cfg, lr, slot.step, &param, &grad, bufs)?,
        OptimizerKind::RmsProp => rmsprop::update(cfg, lr, &param, &grad, bufs)?,
        OptimizerKind::Sgd => sgd::update(cfg, lr, &param, &grad, bufs)?,
    };
    var.set(&new.to_dtype(var.dtype())?)
}

/// Names of the state buffers each parameter carries under `config`, in torch's naming.
fn buffer_names(config: &OptimizerConfig) -> &'static [&'static str] {
    match config.kind {
        OptimizerKind::AdamW => adamw::BUFFERS,
        OptimizerKind::RmsProp => rmsprop::BUFFERS,
        OptimizerKind::Sgd if config.momentum == 0.0 => &[],
        OptimizerKind::Sgd => sgd::BUFFERS,
    }
}

impl OptimizerConfig {
    /// The range of each hyperparameter: `(field, message)` of the first out
    /// of range, e.g. `("weight_decay", "-1 must be a finite number >= 0")`.
    /// `Optimizer::new` refuses such a config; `TrainConfig::validate` checks
    /// it at parse time under the key of `[train]`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        use crate::config::range::{at_least, within_below};
        let check =
            |name: &'static str, r: Result<f64, String>| r.map(|_| ()).map_err(|m| (name, m));
        check("beta1", within_below(self.beta1, 0.0, 1.0))?;
        check("beta2", within_below(self.beta2, 0.0, 1.0))?;
        check("alpha", within_below(self.alpha, 0.0, 1.0))?;
        check("momentum", at_least(self.momentum, 0.0))?;
        check("eps", at_least(self.eps, 0.0))?;
        check("weight_decay", at_least(self.weight_decay, 0.0))
    }
}

/// The rule of a learning rate (`train.lr`, a schedule's base rate, the rate
/// of a step): a finite number >= 0.
pub fn check_lr(lr: f64) -> Result<f64, String> {
    crate::config::range::at_least(lr, 0.0)
}

fn validate(c: &OptimizerConfig) -> Result<(), OptimError> {
    c.validate()
        .map_err(|(name, message)| OptimError::InvalidConfig(format!("`{name}`: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    type Field = fn(&mut OptimizerConfig) -> &mut f64;

    #[test]
    fn each_hyperparameter_is_range_checked_by_name() {
        assert_eq!(OptimizerConfig::default().validate(), Ok(()));
        let unit: [(&str, Field); 3] = [
            ("beta1", |c| &mut c.beta1),
            ("beta2", |c| &mut c.beta2),
            ("alpha", |c| &mut c.alpha),
        ];
        for (name, field) in unit {
            let with = |v: f64| {
                let mut c = OptimizerConfig::default();
                *field(&mut c) = v;
                c.validate()
            };
            assert_eq!(with(0.0), Ok(()), "{name}");
            for bad in [1.0, -0.1].into_iter().chain(NON_FINITE) {
                let m = format!("{bad} must be a finite number in [0, 1)");
                assert_eq!(with(bad), Err((name, m)), "{name}");
            }
        }
        let non_negative: [(&str, Field); 3] = [
            ("momentum", |c| &mut c.momentum),
            ("eps", |c| &mut c.eps),
            ("weight_decay", |c| &mut c.weight_decay),
        ];
        for (name, field) in non_negative {
            let with = |v: f64| {
                let mut c = OptimizerConfig::default();
                *field(&mut c) = v;
                c.validate()
            };
            assert_eq!(with(0.0), Ok(()), "{name}");
            assert_eq!(with(1e6), Ok(()), "{name}");
            for bad in [-1.0].into_iter().chain(NON_FINITE) {
                let m = format!("{bad} must be a finite number >= 0");
                assert_eq!(with(bad), Err((name, m)), "{name}");
            }
        }
    }

    #[test]
    fn the_optimizer_refuses_what_validate_refuses() {
        let c = OptimizerConfig {
            weight_decay: -1.0,
            ..OptimizerConfig::default()
        };
        let e = Optimizer::new(c, Vec::new()).err().expect("refused");
        assert_eq!(
            e.to_string(),
            "invalid optimizer setting: `weight_decay`: -1 must be a finite number >= 0"
        );
    }

    #[test]
    fn a_learning_rate_is_finite_and_non_negative() {
        assert_eq!(check_lr(0.0), Ok(0.0));
        assert_eq!(check_lr(1e-5), Ok(1e-5));
        for bad in [-1e-5].into_iter().chain(NON_FINITE) {
            assert!(check_lr(bad).is_err(), "{bad}");
        }
    }
}
