//! The four objectives on trajectories. A trajectory plays the part of a response:
//! its states are the tokens read, its actions the tokens predicted.

use candle_core::{Result, Tensor};
use ift::loss::PairLogps;
use ift::methods::dpo::{dpo_loss_summed, DpoParams};
use ift::methods::orpo::{orpo_loss, OrpoParams};
use serde::{Deserialize, Serialize};

use crate::ift_method::{ift_loss, IftParams};
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

    /// Whether the method reads the rejected trajectory (so on-policy negatives matter).
    pub fn uses_rejected(self) -> bool {
        matches!(self, Method::Dpo | Method::Orpo)
    }

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodParams {
    /// λ = 0.2 static, γ = 0.95, loss/left/L1, weights not detached.
    pub ift: IftParams,
    /// β = 0.1.
    pub dpo: DpoParams,
    /// β = 0.25.
    pub orpo: OrpoParams,
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
    /// `reference` is the network the fine-tuning starts from (the untrained one, the
    /// pre-trained one or the SFT result, by reading): DPO's `π_ref`, as in the
    /// language-model recipes.
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

/// The method's loss on the pair at zero-based optimiser step `step` (SFT and IFT read
/// only `chosen`; only IFT's λ schedule reads `step`).
pub fn loss(
    method: Method,
    policy: &Policy,
    map: &Map,
    data: &PairData,
    params: &MethodParams,
    step: usize,
) -> Result<Tensor> {
    let chosen = action_logps(policy, &data.x_chosen, &data.chosen.actions)?;
    match method {
        Method::Sft => chosen.neg()?.mean_all(),
        Method::Ift => ift_loss(policy, map, &data.chosen, &params.ift, step),
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
