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
        if !lr.is_finite() || lr < 0.0 {
            return Err(OptimError::InvalidLr(lr));
        }
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

fn validate(c: &OptimizerConfig) -> Result<(), OptimError> {
    let unit = |name: &str, v: f64| match (0.0..1.0).contains(&v) {
        true => Ok(()),
        false => Err(OptimError::InvalidConfig(format!(
            "{name} = {v} must be in [0, 1)"
        ))),
    };
    let non_negative = |name: &str, v: f64| match v.is_finite() && v >= 0.0 {
        true => Ok(()),
        false => Err(OptimError::InvalidConfig(format!(
            "{name} = {v} must be finite and >= 0"
        ))),
    };
    unit("beta1", c.beta1)?;
    unit("beta2", c.beta2)?;
    unit("alpha", c.alpha)?;
    non_negative("momentum", c.momentum)?;
    non_negative("eps", c.eps)?;
    non_negative("weight_decay", c.weight_decay)
}
