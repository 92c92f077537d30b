//! IFT on trajectories (spec §2–3 on grid states) and the options of the library's IFT
//! that the ablation (reading 5) varies: λ schedule, propagation formula and item,
//! detached weights. The weights themselves come from `ift::methods::ift::ift_weights` unchanged.

use candle_core::{Result, Tensor};
use ift::methods::ift::{ift_weights, weighted_loss, Propagation, PropagationParams};
use serde::{Deserialize, Serialize};

use crate::map::Map;
use crate::policy::{action_logps, Policy};
use crate::trajectory::Trajectory;

/// How λ moves over the optimiser steps, with the language-model trainer's semantics
/// (`objective.lambda_schedule`): `static`, or `linear` from `from` to `to` over `steps`
/// steps and then `to`.
///
/// The ramp itself is the trainer's (`ift::objective::Lambda::at`); this enum only
/// gives it Frozen Lake's config names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "lowercase", deny_unknown_fields)]
pub enum Lambda {
    Static { value: f64 },
    Linear { from: f64, to: f64, steps: usize },
}

impl Lambda {
    /// λ at zero-based optimiser step `step`, clamped to [0, 1] as the trainer does.
    pub fn at(&self, step: usize) -> f64 {
        let lambda = match *self {
            Lambda::Static { value } => ift::objective::Lambda::Static(value),
            Lambda::Linear { from, to, steps } => ift::objective::Lambda::Linear {
                min: from,
                max: to,
                warmup_steps: steps as u64,
            },
        };
        lambda.at(step as u64).clamp(0.0, 1.0)
    }
}

/// IFT's coefficients; defaults are the paper's settings (spec §4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IftParams {
    /// Temporal-residual mixing weight; static 0.2 as in the paper.
    pub lambda: Lambda,
    /// `reference` (the authors' discounted, self-normalised weights; default) or
    /// `paper_eq21` (the formula as printed: weight of step t = number of steps up to t).
    pub propagation: Propagation,
    /// The reference formula's options: γ = 0.95, `loss`/`left`/`l1`.
    pub weights: PropagationParams,
    /// Stop the gradient through the weights; false, as the authors' reference.
    pub detach_weights: bool,
}

impl Default for IftParams {
    fn default() -> Self {
        Self {
            lambda: Lambda::Static { value: 0.2 },
            propagation: Propagation::Reference,
            weights: PropagationParams::default(),
            detach_weights: false,
        }
    }
}

/// IFT's temporal residual input for a trajectory (spec §2 on grid states):
/// `ŝ_0 = s_0`, `ŝ_t = move(s_{t−1}, argmax π(·|s_{t−1}))` from a no-gradient pass on
/// the true states, and `x_t = (1 − λ) E[s_t] + λ E[ŝ_t]`. The move is the intended one
/// even on slippery ice: the guess is the policy's, not the environment's.
pub fn ift_inputs(policy: &Policy, map: &Map, traj: &Trajectory, lambda: f64) -> Result<Tensor> {
    let truth = policy.encode(map, &traj.states)?;
    let logp = policy.log_probs(&truth)?.detach().to_vec2::<f32>()?;
    let greedy =
        |row: &[f32]| (0..row.len()).fold(0, |best, a| if row[a] > row[best] { a } else { best });
    let mut predicted = vec![traj.states[0]];
    for t in 1..traj.states.len() {
        predicted.push(map.intended_move(traj.states[t - 1], greedy(&logp[t - 1])));
    }
    (truth * (1.0 - lambda))? + (policy.encode(map, &predicted)? * lambda)?
}

/// IFT's loss on `traj` at zero-based step `step`: NLL of the true actions read from the
/// mixed inputs, weighted by relation propagation, `L = Σ_t w_t ℓ_t / T`.
pub fn ift_loss(
    policy: &Policy,
    map: &Map,
    traj: &Trajectory,
    params: &IftParams,
    step: usize,
) -> Result<Tensor> {
    let x = ift_inputs(policy, map, traj, params.lambda.at(step))?;
    let nll = action_logps(policy, &x, &traj.actions)?
        .neg()?
        .unsqueeze(0)?; // (1, T)
    let mask = nll.ones_like()?.detach();
    let w = ift_weights(
        &nll,
        &mask,
        params.propagation,
        &params.weights,
        params.detach_weights,
    )?;
    weighted_loss(&nll, &mask, &w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_schedules() {
        assert_eq!(Lambda::Static { value: 0.2 }.at(1000), 0.2);
        let ramp = Lambda::Linear {
            from: 0.0,
            to: 0.2,
            steps: 150,
        };
        let at = |s| ramp.at(s);
        assert_eq!((at(0), at(150), at(199)), (0.0, 0.2, 0.2));
        assert!((at(75) - 0.1).abs() < 1e-12);
        assert_eq!(
            Lambda::Linear {
                from: 0.0,
                to: 0.2,
                steps: 0
            }
            .at(0),
            0.2
        );
        assert_eq!(Lambda::Static { value: 1.5 }.at(0), 1.0);
    }
}
