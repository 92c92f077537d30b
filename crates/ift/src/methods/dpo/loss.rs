//! Direct Preference Optimization (Rafailov et al., 2023) with conservative DPO
//! (label smoothing), the hinge loss and IPO (Azar et al., 2023), as TRL's
//! `DPOTrainer.dpo_loss` defines them.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::loss::{f32, smoothed_logistic, PairLogps, PairLoss};

/// `objective.loss_type` of `kind = "dpo"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpoLossType {
    /// `−log σ(βh)` (DPO Eq. 7), with `label_smoothing` ε: cDPO. Default.
    #[default]
    Sigmoid,
    /// `max(0, 1 − βh)` (SLiC's hinge, TRL's `hinge`).
    Hinge,
    /// `(h − 1/(2β))²` (IPO Eq. 17) with `h` from length-averaged log-probabilities.
    Ipo,
}

/// DPO's coefficients (`[objective]` with `kind = "dpo"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoParams {
    /// Inverse temperature β of the implicit reward. Default 0.1, as in the DPO
    /// and IFT papers. Must be > 0.
    pub beta: f64,
    /// cDPO's ε, the assumed probability that a preference label is flipped
    /// (`sigmoid` only). Default 0 (plain DPO); must be in [0, 0.5).
    pub label_smoothing: f64,
    /// `sigmoid` (default), `hinge` or `ipo`.
    pub loss_type: DpoLossType,
    /// Weight of an added SFT term on the chosen answer (per-sequence mean-token
    /// NLL, averaged over pairs; RPO's α). Default 0.
    pub sft_weight: f64,
}

impl Default for DpoParams {
    fn default() -> Self {
        Self {
            beta: 0.1,
            label_smoothing: 0.0,
            loss_type: DpoLossType::Sigmoid,
            sft_weight: 0.0,
        }
    }
}

/// DPO's per-pair losses. With `π` the policy and `π_ref` the reference,
/// `h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))` and
///
/// - `sigmoid`: `L = −(1 − ε)·log σ(βh) − ε·log σ(−βh)` (DPO Eq. 7; cDPO for ε > 0);
/// - `hinge`: `L = max(0, 1 − βh)`;
/// - `ipo`: `L = (h − 1/(2β))²` (IPO Eq. 17), where every log-probability in `h`
///   is divided by its answer's length first, as TRL computes IPO since its fix of
///   the original sum-based version (IPO's regulariser is per token).
///
/// Rewards are `β(log π − log π_ref)` of each answer (length-averaged for `ipo`).
/// A reference-free run passes zeros as `reference`. Computed in f32.
pub fn dpo_loss(policy: &PairLogps, reference: &PairLogps, params: &DpoParams) -> Result<PairLoss> {
    let ((pc, pr), (rc, rr)) = match params.loss_type {
        DpoLossType::Ipo => (policy.averaged()?, reference.averaged()?),
        _ => (
            (f32(&policy.chosen)?, f32(&policy.rejected)?),
            (f32(&reference.chosen)?, f32(&reference.rejected)?),
        ),
    };
    let (chosen, rejected) = ((&pc - &rc)?, (&pr - &rr)?);
    let h = (&chosen - &rejected)?;
    let beta = params.beta;
    let losses = match params.loss_type {
        DpoLossType::Sigmoid => smoothed_logistic(&h.affine(beta, 0.0)?, params.label_smoothing)?,
        DpoLossType::Hinge => h.affine(-beta, 1.0)?.relu()?,
        DpoLossType::Ipo => h.affine(1.0, -1.0 / (2.0 * beta))?.sqr()?,
    };
    Ok(PairLoss {
        losses,
        chosen_rewards: chosen.affine(beta, 0.0)?.detach(),
        rejected_rewards: rejected.affine(beta, 0.0)?.detach(),
    })
}

/// [`dpo_loss`] on plain `(batch,)` summed log-probabilities (lengths 1), its
/// batch mean as the loss: the form Frozen Lake's trajectories use.
pub fn dpo_loss_summed(
    policy_chosen: &Tensor,
    policy_rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    params: &DpoParams,
) -> Result<PairLoss> {
    let ones = policy_chosen.ones_like()?;
    let p = PairLogps {
        chosen: policy_chosen.clone(),
        rejected: policy_rejected.clone(),
        chosen_len: ones.clone(),
        rejected_len: ones,
    };
    let r = p.with_logps(ref_chosen.clone(), ref_rejected.clone());
    dpo_loss(&p, &r, params)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
