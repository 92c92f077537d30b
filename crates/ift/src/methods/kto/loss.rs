//! Kahneman–Tversky Optimization (Ethayarajh et al., 2024) on unpaired
//! desirable / undesirable answers, as TRL's `KTOTrainer.kto_loss` defines it.
//!
//! The reference point `z` is TRL's estimate of `KL(π ‖ π_ref)`: the mean, over
//! the optimiser step's examples, of `log π(y'|x) − log π_ref(y'|x)` on
//! *mismatched* pairs — example `i`'s prompt with example `i − 1`'s answer
//! (TRL's shift by one within the batch) — clamped at 0 and detached. Here the
//! mismatched pairs are those of the whole optimiser step (not of a
//! micro-batch), so gradient accumulation does not change `z`.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::loss::f32;
use crate::loss::log_sigmoid;

/// KTO's coefficients (`[objective]` with `kind = "kto"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KtoParams {
    /// β. Default 0.1, TRL's and the KTO paper's. Must be > 0.
    pub beta: f64,
    /// λ_D, the weight of desirable examples. Default 1. Must be > 0.
    pub desirable_weight: f64,
    /// λ_U, the weight of undesirable examples. Default 1. Must be > 0. (The KTO
    /// paper suggests `λ_D·n_D / (λ_U·n_U)` in [1, 4/3] for unbalanced data.)
    pub undesirable_weight: f64,
    /// Weight of an added SFT term on desirable answers (per-sequence mean-token
    /// NLL, summed over desirable examples and divided by all examples). Default 0.
    pub sft_weight: f64,
}

impl Default for KtoParams {
    fn default() -> Self {
        Self {
            beta: 0.1,
            desirable_weight: 1.0,
            undesirable_weight: 1.0,
            sft_weight: 0.0,
        }
    }
}

/// The reference point `z = max(0, mean_i (log π(y'_i|x_i) − log π_ref(y'_i|x_i)))`
/// over mismatched pairs, a plain number (KTO Eq. 8's `z_0`, TRL's estimate).
pub fn kto_reference_point(policy_kl_logps: &[f64], ref_kl_logps: &[f64]) -> f64 {
    let n = policy_kl_logps.len().max(1) as f64;
    let sum: f64 = policy_kl_logps
        .iter()
        .zip(ref_kl_logps)
        .map(|(p, r)| p - r)
        .sum();
    (sum / n).max(0.0)
}

/// KTO's per-example losses (KTO Eq. 8 as TRL computes it): with
/// `r = log π(y|x) − log π_ref(y|x)`,
/// - desirable: `L = λ_D·(1 − σ(β(r − z)))`,
/// - undesirable: `L = λ_U·(1 − σ(β(z − r)))`.
///
/// Returns `(losses, rewards)`, rewards `β·r` detached.
///
/// # Shapes
/// `policy_logps`, `ref_logps`, `desirable` (f32 1/0): `(b,)`. In f32.
pub fn kto_loss(
    policy_logps: &Tensor,
    ref_logps: &Tensor,
    desirable: &Tensor,
    z: f64,
    params: &KtoParams,
) -> Result<(Tensor, Tensor)> {
    let r = (f32(policy_logps)? - f32(ref_logps)?)?;
    let d = f32(desirable)?;
    // sign = +1 for desirable, −1 for undesirable: σ(β·sign·(r − z)).
    let sign = d.affine(2.0, -1.0)?;
    // σ as exp(log σ): built from ops that all record a backward pass.
    let x = r.affine(1.0, -z)?.mul(&sign)?.affine(params.beta, 0.0)?;
    let s = log_sigmoid(&x)?.exp()?;
    let (wd, wu) = (params.desirable_weight, params.undesirable_weight);
    let weight = d.affine(wd - wu, wu)?;
    let losses = s.affine(-1.0, 1.0)?.mul(&weight)?;
    Ok((losses, r.affine(params.beta, 0.0)?.detach()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn reference_point_is_the_clamped_mean() {
        assert!((kto_reference_point(&[-1.0, -2.0], &[-1.5, -2.5]) - 0.5).abs() < 1e-12);
        assert_eq!(kto_reference_point(&[-3.0], &[-1.0]), 0.0);
    }

    #[test]
    fn kto_matches_hand_computed_values_and_gradient() -> Result<()> {
        // r = (1, −1), z = 0.5, β = 1; desirable: 1 − σ(0.5) = 0.377541 (λ_D = 2 ⇒ 0.755081);
        // undesirable: 1 − σ(0.5 − (−1)) = 1 − σ(1.5) = 0.182426.
        // ∂L/∂r for the desirable one: −λ_D β σ(x)(1 − σ(x)) at x = 0.5 = −2·0.235004 = −0.470008.
        let dev = Device::Cpu;
        let p = Var::new(&[1.0f32, -1.0], &dev)?;
        let zero = Tensor::zeros(2, candle_core::DType::F32, &dev)?;
        let labels = Tensor::new(&[1f32, 0.0], &dev)?;
        let params = KtoParams {
            beta: 1.0,
            desirable_weight: 2.0,
            ..KtoParams::default()
        };
        let (losses, rewards) = kto_loss(p.as_tensor(), &zero, &labels, 0.5, &params)?;
        let l = losses.to_vec1::<f32>()?;
        assert!(
            (l[0] - 0.755081).abs() < 1e-5 && (l[1] - 0.182426).abs() < 1e-5,
            "{l:?}"
        );
        assert_eq!(rewards.to_vec1::<f32>()?, vec![1.0, -1.0]);
        let g = losses.sum_all()?.backward()?;
        let g = g.get(p.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((g[0] + 0.470008).abs() < 1e-5, "{g:?}");
        Ok(())
    }
}
