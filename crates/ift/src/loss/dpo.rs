//! Direct Preference Optimization (Rafailov et al., 2023), with the cDPO and
//! IPO variants as options, following eric-mitchell/direct-preference-optimization.

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::log_sigmoid::log_sigmoid;

/// DPO's coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoParams {
    /// Inverse temperature β of the implicit reward; 0.1 as in the DPO and IFT papers.
    pub beta: f64,
    /// cDPO's ε: the probability that a preference label is flipped; 0 is plain DPO.
    pub label_smoothing: f64,
    /// Use IPO's squared loss `(h − 1/(2β))²` instead of the logistic loss.
    pub ipo: bool,
}

impl Default for DpoParams {
    fn default() -> Self {
        Self {
            beta: 0.1,
            label_smoothing: 0.0,
            ipo: false,
        }
    }
}

/// The batch loss and the (detached) implicit rewards.
#[derive(Debug, Clone)]
pub struct DpoOutput {
    /// Scalar: the mean over the batch.
    pub loss: Tensor,
    /// `(batch,)`: `β (log π(y_w|x) − log π_ref(y_w|x))`, detached.
    pub chosen_rewards: Tensor,
    /// `(batch,)`: `β (log π(y_l|x) − log π_ref(y_l|x))`, detached.
    pub rejected_rewards: Tensor,
}

/// DPO loss (DPO paper Eq. 7):
/// `h = (log π(y_w) − log π(y_l)) − (log π_ref(y_w) − log π_ref(y_l))`,
/// `L = −(1 − ε) log σ(β h) − ε log σ(−β h)`; with `ipo`, `L = (h − 1/(2β))²` (IPO Eq. 17).
///
/// # Shapes
/// All four inputs are `(batch,)` per-sequence *summed* log-probabilities; computed in f32.
pub fn dpo_loss(
    policy_chosen_logps: &Tensor,
    policy_rejected_logps: &Tensor,
    ref_chosen_logps: &Tensor,
    ref_rejected_logps: &Tensor,
    params: &DpoParams,
) -> Result<DpoOutput> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let (pc, pr, rc, rr) = (
        f(policy_chosen_logps)?,
        f(policy_rejected_logps)?,
        f(ref_chosen_logps)?,
        f(ref_rejected_logps)?,
    );
    let h = ((&pc - &pr)? - (&rc - &rr)?)?;
    let beta = params.beta;
    let losses = if params.ipo {
        h.affine(1.0, -1.0 / (2.0 * beta))?.sqr()?
    } else {
        let eps = params.label_smoothing;
        let pos = log_sigmoid(&h.affine(beta, 0.0)?)?.affine(-(1.0 - eps), 0.0)?;
        let neg = log_sigmoid(&h.affine(-beta, 0.0)?)?.affine(-eps, 0.0)?;
        (pos + neg)?
    };
    Ok(DpoOutput {
        loss: losses.mean_all()?,
        chosen_rewards: (pc - rc)?.affine(beta, 0.0)?.detach(),
        rejected_rewards: (pr - rr)?.affine(beta, 0.0)?.detach(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn dpo_loss_matches_hand_computed_values() -> Result<()> {
        // h = (−1 − −3) − (−2 − −2) = 2 and h = 0; β = 0.5 ⇒ β h = 1 and 0.
        // L = mean(ln(1 + e^{−1}), ln 2) = (0.313262 + 0.693147) / 2 = 0.503204.
        let p = DpoParams {
            beta: 0.5,
            ..DpoParams::default()
        };
        let out = dpo_loss(
            &t(&[-1.0, -4.0]),
            &t(&[-3.0, -4.0]),
            &t(&[-2.0, -5.0]),
            &t(&[-2.0, -5.0]),
            &p,
        )?;
        assert!((out.loss.to_scalar::<f32>()? - 0.503204).abs() < 1e-5);
        assert_eq!(out.chosen_rewards.to_vec1::<f32>()?, vec![0.5, 0.5]);
        assert_eq!(out.rejected_rewards.to_vec1::<f32>()?, vec![-0.5, 0.5]);
        Ok(())
    }

    #[test]
    fn label_smoothing_and_ipo_match_hand_computed_values() -> Result<()> {
        // h = 2, β = 0.5, ε = 0.25: 0.75·ln(1 + e^{−1}) + 0.25·ln(1 + e^{1}) = 0.234947 + 0.328315.
        let p = DpoParams {
            beta: 0.5,
            label_smoothing: 0.25,
            ipo: false,
        };
        let (c, r, z) = (t(&[-1.0]), t(&[-3.0]), t(&[0.0]));
        let l = dpo_loss(&c, &r, &z, &z, &p)?.loss.to_scalar::<f32>()?;
        assert!((l - 0.563262).abs() < 1e-5, "{l}");
        // IPO: (h − 1/(2β))² = (2 − 1)² = 1.
        let p = DpoParams {
            beta: 0.5,
            label_smoothing: 0.0,
            ipo: true,
        };
        assert!((dpo_loss(&c, &r, &z, &z, &p)?.loss.to_scalar::<f32>()? - 1.0).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn gradient_pushes_chosen_up_and_rejected_down() -> Result<()> {
        // ∂L/∂logπ(y_w) = −β σ(−β h); at h = 0, β = 0.1: −0.05, and +0.05 for y_l.
        let (c, r) = (
            Var::new(&[-1.0f32], &Device::Cpu)?,
            Var::new(&[-1.0f32], &Device::Cpu)?,
        );
        let z = t(&[-1.0]);
        let out = dpo_loss(c.as_tensor(), r.as_tensor(), &z, &z, &DpoParams::default())?;
        let g = out.loss.backward()?;
        assert!((g.get(c.as_tensor()).unwrap().to_vec1::<f32>()?[0] + 0.05).abs() < 1e-6);
        assert!((g.get(r.as_tensor()).unwrap().to_vec1::<f32>()?[0] - 0.05).abs() < 1e-6);
        Ok(())
    }
}
