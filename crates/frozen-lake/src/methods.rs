//! The four objectives on trajectories. A trajectory plays the part of a response:
//! its states are the tokens read, its actions the tokens predicted.

use candle_core::{Result, Tensor};
use ift::loss::{
    dpo_loss_summed, orpo_loss, propagation_weights, weighted_loss, DpoParams, OrpoParams,
    PairLogps, PropagationParams,
};
use serde::{Deserialize, Serialize};

use crate::map::Map;
use crate::policy::{action_logps, Policy};
use crate::trajectory::Trajectory;

/// The objective, chosen once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sft,
    Ift,
    Dpo,
    Orpo,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::Sft, Method::Ift, Method::Dpo, Method::Orpo];

    pub fn name(self) -> &'static str {
        match self {
            Method::Sft => "SFT",
            Method::Ift => "IFT",
            Method::Dpo => "DPO",
            Method::Orpo => "ORPO",
        }
    }
}

/// Coefficients of every method; defaults are the IFT paper's settings (spec §4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodParams {
    /// IFT's temporal-residual mixing weight λ (static); 0.2 as in the paper.
    pub ift_lambda: f64,
    /// IFT's relation propagation: γ = 0.95, loss/left/L1, weights not detached.
    pub propagation: PropagationParams,
    pub dpo: DpoParams,
    pub orpo: OrpoParams,
}

impl Default for MethodParams {
    fn default() -> Self {
        Self {
            ift_lambda: 0.2,
            propagation: PropagationParams::default(),
            dpo: DpoParams::default(),
            orpo: OrpoParams::default(),
        }
    }
}

/// The training pair, encoded once, and the reference policy's summed log-probs for DPO.
pub struct PairData {
    pub chosen: Trajectory,
    pub rejected: Trajectory,
    x_chosen: Tensor,
    x_rejected: Tensor,
    ref_logps: (Tensor, Tensor),
}

impl PairData {
    /// `reference` is the policy at initialisation: there is no SFT stage to start
    /// DPO from, so the starting network plays `π_ref`, as in DPO without SFT.
    pub fn new(
        map: &Map,
        chosen: Trajectory,
        rejected: Trajectory,
        reference: &Policy,
    ) -> Result<Self> {
        let x_chosen = reference.encode(map, &chosen.states)?;
        let x_rejected = reference.encode(map, &rejected.states)?;
        let rc = action_logps(reference, &x_chosen, &chosen.actions)?
            .sum_keepdim(0)?
            .detach();
        let rr = action_logps(reference, &x_rejected, &rejected.actions)?
            .sum_keepdim(0)?
            .detach();
        Ok(Self {
            chosen,
            rejected,
            x_chosen,
            x_rejected,
            ref_logps: (rc, rr),
        })
    }
}

/// IFT's temporal residual input for a trajectory (spec §2 on grid states):
/// `ŝ_0 = s_0`, `ŝ_t = move(s_{t−1}, argmax π(·|s_{t−1}))` from a no-gradient pass on
/// the true states, and `x_t = (1 − λ) E[s_t] + λ E[ŝ_t]`.
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

/// The method's loss on the pair (SFT and IFT read only `chosen`).
pub fn loss(
    method: Method,
    policy: &Policy,
    map: &Map,
    data: &PairData,
    params: &MethodParams,
) -> Result<Tensor> {
    let chosen = action_logps(policy, &data.x_chosen, &data.chosen.actions)?;
    match method {
        Method::Sft => chosen.neg()?.mean_all(),
        Method::Ift => {
            let x = ift_inputs(policy, map, &data.chosen, params.ift_lambda)?;
            let nll = action_logps(policy, &x, &data.chosen.actions)?
                .neg()?
                .unsqueeze(0)?; // (1, T)
            let mask = nll.ones_like()?.detach();
            let w = propagation_weights(&nll, &mask, &params.propagation)?;
            weighted_loss(&nll, &mask, &w)
        }
        Method::Dpo => {
            let rejected = action_logps(policy, &data.x_rejected, &data.rejected.actions)?;
            let (rc, rr) = &data.ref_logps;
            dpo_loss_summed(
                &chosen.sum_keepdim(0)?,
                &rejected.sum_keepdim(0)?,
                rc,
                rr,
                &params.dpo,
            )?
            .mean()
        }
        Method::Orpo => {
            let rejected = action_logps(policy, &data.x_rejected, &data.rejected.actions)?;
            // Mean log-probabilities as "sums over one token": ORPO averages first.
            let c = chosen.mean_keepdim(0)?;
            let ones = c.ones_like()?;
            let pair = PairLogps {
                chosen: c.clone(),
                rejected: rejected.mean_keepdim(0)?,
                chosen_len: ones.clone(),
                rejected_len: ones,
            };
            c.neg()?.mean_all()? + orpo_loss(&pair, &params.orpo)?.mean()?
        }
    }
}

#[cfg(test)]
#[path = "methods_tests.rs"]
mod tests;
