//! Odds Ratio Preference Optimization (Hong et al., 2024): SFT plus an
//! odds-ratio penalty, no reference model.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::loss::{log1m_exp, log_sigmoid};
use crate::loss::{PairLogps, PairLoss};

/// ORPO's coefficient (`[objective]` with `kind = "orpo"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrpoParams {
    /// Weight β (λ in the ORPO paper) of the odds-ratio term. Default 0.25, the
    /// IFT paper's. Must be ≥ 0 (0 is SFT on the chosen answers).
    pub beta: f64,
}

impl Default for OrpoParams {
    fn default() -> Self {
        Self { beta: 0.25 }
    }
}

/// ORPO's odds-ratio term per pair (ORPO paper Eqs. 6–7): with `P` the
/// length-averaged log-probabilities,
/// `log OR = (P_w − P_l) − (log(1 − e^{P_w}) − log(1 − e^{P_l}))` and
/// `L_OR = −β·log σ(log OR)`. The full ORPO loss adds the chosen answer's
/// per-sequence mean-token NLL (`L = L_SFT + L_OR`), which the training step
/// computes with the step's normalisation. Rewards are `β·P` (TRL's ORPO).
/// `log(1 − eˣ)` is [`log1m_exp`]; computed in f32.
pub fn orpo_loss(policy: &PairLogps, params: &OrpoParams) -> Result<PairLoss> {
    let (c, r) = policy.averaged()?;
    let log_odds = orpo_log_odds(&c, &r)?;
    Ok(PairLoss {
        losses: log_sigmoid(&log_odds)?.affine(-params.beta, 0.0)?,
        chosen_rewards: c.affine(params.beta, 0.0)?.detach(),
        rejected_rewards: r.affine(params.beta, 0.0)?.detach(),
    })
}

/// The log odds ratio `log OR` of each pair from length-averaged log-probabilities.
pub fn orpo_log_odds(chosen_mean_logps: &Tensor, rejected_mean_logps: &Tensor) -> Result<Tensor> {
    let (c, r) = (chosen_mean_logps, rejected_mean_logps);
    (c - r)? - (log1m_exp(c)? - log1m_exp(r)?)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn pair(c: f32, r: f32) -> PairLogps {
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        PairLogps {
            chosen: t(c),
            rejected: t(r),
            chosen_len: t(1.0),
            rejected_len: t(1.0),
        }
    }

    #[test]
    fn orpo_term_matches_hand_computed_values() -> Result<()> {
        // P_w = ln 0.5, P_l = ln 0.25: odds 1 and 1/3, so log OR = ln 3.
        // L_OR = −0.25 · log σ(ln 3) = −0.25 · ln 0.75 = 0.071921.
        let out = orpo_loss(&pair(0.5f32.ln(), 0.25f32.ln()), &OrpoParams::default())?;
        assert!((out.losses.to_vec1::<f32>()?[0] - 0.071921).abs() < 1e-5);
        let lo = orpo_log_odds(
            &pair(0.5f32.ln(), 0.0).chosen,
            &pair(0.25f32.ln(), 0.0).chosen,
        )?;
        assert!((lo.to_vec1::<f32>()?[0] - 3f32.ln()).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn equal_answers_give_log_odds_zero() -> Result<()> {
        // log OR = 0 ⇒ L_OR = β ln 2.
        let out = orpo_loss(&pair(-1.5, -1.5), &OrpoParams { beta: 1.0 })?;
        assert!((out.losses.to_vec1::<f32>()?[0] - std::f32::consts::LN_2).abs() < 1e-6);
        Ok(())
    }
}
