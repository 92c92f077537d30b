//! Odds Ratio Preference Optimization (Hong et al., 2024): SFT plus an
//! odds-ratio penalty, no reference model.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::log_sigmoid::{log1m_exp, log_sigmoid};

/// ORPO's coefficient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrpoParams {
    /// Weight β (λ in the ORPO paper) of the odds-ratio term; 0.25 as in the IFT paper.
    pub beta: f64,
}

impl Default for OrpoParams {
    fn default() -> Self {
        Self { beta: 0.25 }
    }
}

/// The batch loss and its parts.
#[derive(Debug, Clone)]
pub struct OrpoOutput {
    /// Scalar: `nll − β · mean(log σ(log_odds_ratio))`.
    pub loss: Tensor,
    /// Scalar: the mean of `chosen_nll`.
    pub nll: Tensor,
    /// `(batch,)`: `log odds(y_w) − log odds(y_l)`, detached.
    pub log_odds_ratio: Tensor,
}

/// ORPO loss (ORPO paper Eqs. 6–7): with `P` the length-averaged log-probabilities,
/// `log OR = (P_w − P_l) − (log(1 − e^{P_w}) − log(1 − e^{P_l}))`,
/// `L = L_SFT − β log σ(log OR)`, averaged over the batch.
///
/// # Shapes
/// `chosen_mean_logps`, `rejected_mean_logps` and `chosen_nll` are `(batch,)`; computed in f32.
pub fn orpo_loss(
    chosen_mean_logps: &Tensor,
    rejected_mean_logps: &Tensor,
    chosen_nll: &Tensor,
    params: &OrpoParams,
) -> Result<OrpoOutput> {
    let c = chosen_mean_logps.to_dtype(DType::F32)?;
    let r = rejected_mean_logps.to_dtype(DType::F32)?;
    let log_odds = ((&c - &r)? - (log1m_exp(&c)? - log1m_exp(&r)?)?)?;
    let ratio_term = log_sigmoid(&log_odds)?
        .mean_all()?
        .affine(params.beta, 0.0)?;
    let nll = chosen_nll.to_dtype(DType::F32)?.mean_all()?;
    Ok(OrpoOutput {
        loss: (&nll - ratio_term)?,
        nll,
        log_odds_ratio: log_odds.detach(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn orpo_loss_matches_hand_computed_values() -> Result<()> {
        // P_w = ln 0.5, P_l = ln 0.25: odds 1 and 1/3, so log OR = ln 3.
        // L = 0.7 − 0.25 · log σ(ln 3) = 0.7 − 0.25 · ln 0.75 = 0.771921.
        let dev = Device::Cpu;
        let c = Tensor::new(&[0.5f32.ln()], &dev)?;
        let r = Tensor::new(&[0.25f32.ln()], &dev)?;
        let out = orpo_loss(
            &c,
            &r,
            &Tensor::new(&[0.7f32], &dev)?,
            &OrpoParams::default(),
        )?;
        assert!((out.log_odds_ratio.to_vec1::<f32>()?[0] - 3f32.ln()).abs() < 1e-5);
        assert!((out.loss.to_scalar::<f32>()? - 0.771921).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn equal_answers_give_log_odds_zero() -> Result<()> {
        // log OR = 0 ⇒ L = nll + β ln 2.
        let p = Tensor::new(&[-1.5f32, -0.2], &Device::Cpu)?;
        let nll = Tensor::new(&[1.0f32, 3.0], &Device::Cpu)?;
        let out = orpo_loss(&p, &p, &nll, &OrpoParams { beta: 1.0 })?;
        assert!((out.loss.to_scalar::<f32>()? - (2.0 + std::f32::consts::LN_2)).abs() < 1e-5);
        Ok(())
    }
}
