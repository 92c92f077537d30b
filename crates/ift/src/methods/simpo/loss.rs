//! SimPO (Meng et al., 2024): a reference-free margin on length-normalised
//! log-probabilities, as TRL's `CPOTrainer` (`loss_type = "simpo"`) computes it.

use candle_core::Result;
use serde::{Deserialize, Serialize};

use crate::loss::{smoothed_logistic, PairLogps, PairLoss};

/// SimPO's coefficients (`[objective]` with `kind = "simpo"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimpoParams {
    /// β, the reward scale. Default 2.0 (the IFT paper's and SimPO's). Must be > 0.
    pub beta: f64,
    /// γ/β: the target margin in units of β. Default 0.8, the IFT paper's
    /// (γ = 1.6 at β = 2). Must be ≥ 0.
    pub gamma_beta_ratio: f64,
    /// ε of the smoothed logistic loss, as in cDPO. Default 0; must be in [0, 0.5).
    pub label_smoothing: f64,
    /// Weight of an added SFT term on the chosen answer (CPO's BC term). Default 0.
    pub sft_weight: f64,
}

impl Default for SimpoParams {
    fn default() -> Self {
        Self {
            beta: 2.0,
            gamma_beta_ratio: 0.8,
            label_smoothing: 0.0,
            sft_weight: 0.0,
        }
    }
}

/// SimPO's per-pair losses (SimPO Eq. 6):
/// `L = −log σ(β/|y_w|·log π(y_w) − β/|y_l|·log π(y_l) − γ)` with `γ = β·(γ/β)`,
/// and with label smoothing ε: `−(1−ε)·log σ(z) − ε·log σ(−z)`. Rewards are
/// `β·log π(y)/|y|`. No reference model; computed in f32.
pub fn simpo_loss(policy: &PairLogps, params: &SimpoParams) -> Result<PairLoss> {
    let (c, r) = policy.averaged()?;
    let beta = params.beta;
    let z = (&c - &r)?.affine(beta, -beta * params.gamma_beta_ratio)?;
    Ok(PairLoss {
        losses: smoothed_logistic(&z, params.label_smoothing)?,
        chosen_rewards: c.affine(beta, 0.0)?.detach(),
        rejected_rewards: r.affine(beta, 0.0)?.detach(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn simpo_matches_hand_computed_values() -> Result<()> {
        // P_w = −2/2 = −1, P_l = −6/3 = −2; β = 2, γ/β = 0.8: z = 2·1 − 1.6 = 0.4,
        // L = ln(1 + e^{−0.4}) = 0.513015.
        let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
        let p = PairLogps {
            chosen: t(&[-2.0]),
            rejected: t(&[-6.0]),
            chosen_len: t(&[2.0]),
            rejected_len: t(&[3.0]),
        };
        let out = simpo_loss(&p, &SimpoParams::default())?;
        assert!((out.losses.to_vec1::<f32>()?[0] - 0.513015).abs() < 1e-5);
        assert_eq!(out.chosen_rewards.to_vec1::<f32>()?, vec![-2.0]);
        assert_eq!(out.rejected_rewards.to_vec1::<f32>()?, vec![-4.0]);
        Ok(())
    }
}
