//! Token-level Direct Preference Optimization (Zeng et al., 2024), TDPO1 and
//! TDPO2, as the authors' code (`tdpo_loss`, `_tdpo_get_batch_logps`) computes them.
//!
//! TDPO needs the reference model's full next-token distribution at every answer
//! position, so the reference model stays in memory during training (a second
//! copy of the weights, without gradients or optimiser state: +4 bytes per
//! parameter in f32) and its logits are computed alongside the policy's.

use candle_core::{Result, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::data::next_positions;
use crate::loss::f32;
use crate::loss::log_sigmoid;
use crate::loss::log_softmax;

/// `objective.variant` of `kind = "tdpo"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TdpoVariant {
    /// TDPO1: the KL difference enters with weight 1 and gradient through both terms.
    Tdpo1,
    /// TDPO2 (default, the paper's better variant): weight α, chosen KL detached.
    #[default]
    Tdpo2,
}

/// TDPO's coefficients (`[objective]` with `kind = "tdpo"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdpoParams {
    /// β. Default 0.1, the IFT paper's. Must be > 0.
    pub beta: f64,
    /// α, TDPO2's weight of the sequential-KL difference. Default 0.5, the
    /// authors'. Must be ≥ 0.
    pub alpha: f64,
    /// `tdpo1` or `tdpo2` (default).
    pub variant: TdpoVariant,
    /// Weight of an added SFT term on the chosen answer. Default 0.
    pub sft_weight: f64,
}

impl Default for TdpoParams {
    fn default() -> Self {
        Self {
            beta: 0.1,
            alpha: 0.5,
            variant: TdpoVariant::Tdpo2,
            sft_weight: 0.0,
        }
    }
}

/// Per-sequence terms of TDPO, each `(b,)`.
#[derive(Debug, Clone)]
pub struct TdpoTerms {
    /// `Σ_t m_t (log π(y_t) − log π_ref(y_t))`.
    pub margin: Tensor,
    /// Sequential KL `Σ_t m_t Σ_v π_ref(v) (log π_ref(v) − log π(v))`.
    pub kl: Tensor,
    /// `Σ_t m_t log π(y_t)` (for metrics and the SFT term).
    pub logps: Tensor,
}

/// TDPO's per-sequence terms from the policy's and the reference's logits.
///
/// # Shapes
/// `logits`, `ref_logits`: `(b, t, vocab)`; `input_ids`: `(b, t)` u32; `mask`:
/// `(b, t − 1)` f32, 1 where target token `i + 1` is an answer token.
pub fn tdpo_terms(
    logits: &Tensor,
    ref_logits: &Tensor,
    input_ids: &Tensor,
    mask: &Tensor,
) -> Result<TdpoTerms> {
    let t = input_ids.dim(1)?;
    let logp = log_softmax(&f32(&logits.narrow(1, 0, t - 1)?)?)?;
    let ref_logp = log_softmax(&f32(&ref_logits.narrow(1, 0, t - 1)?)?.detach())?;
    let targets = next_positions(input_ids)?.unsqueeze(2)?;
    let pick = |x: &Tensor| x.contiguous()?.gather(&targets, 2)?.squeeze(2);
    let (token, ref_token) = (pick(&logp)?, pick(&ref_logp)?);
    let position_kl = ref_logp.exp()?.mul(&(&ref_logp - &logp)?)?.sum(D::Minus1)?;
    let masked_sum = |x: &Tensor| x.mul(mask)?.sum(D::Minus1);
    Ok(TdpoTerms {
        margin: masked_sum(&(&token - &ref_token)?)?,
        kl: masked_sum(&position_kl)?,
        logps: masked_sum(&token)?,
    })
}

/// TDPO's per-pair losses (TDPO Eqs. 17–18 in the authors' code's form): with
/// `u = margin_w − margin_l`,
/// - TDPO1: `L = −log σ(β(u − (KL_l − KL_w)))`;
/// - TDPO2: `L = −log σ(β(u − α(KL_l − sg(KL_w))))`.
///
/// Returns `(losses, chosen rewards, rejected rewards)`, rewards
/// `β(margin + KL)` detached. Computed in f32.
pub fn tdpo_loss(
    chosen: &TdpoTerms,
    rejected: &TdpoTerms,
    params: &TdpoParams,
) -> Result<(Tensor, Tensor, Tensor)> {
    let u = (&chosen.margin - &rejected.margin)?;
    let kl_gap = match params.variant {
        TdpoVariant::Tdpo1 => (&rejected.kl - &chosen.kl)?,
        TdpoVariant::Tdpo2 => (&rejected.kl - &chosen.kl.detach())?.affine(params.alpha, 0.0)?,
    };
    let losses = log_sigmoid(&(u - kl_gap)?.affine(params.beta, 0.0)?)?.neg()?;
    let reward = |x: &TdpoTerms| -> Result<Tensor> {
        (&x.margin + &x.kl)?
            .affine(params.beta, 0.0)
            .map(|r| r.detach())
    };
    Ok((losses, reward(chosen)?, reward(rejected)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn identical_policy_and_reference_give_zero_margin_and_kl() -> Result<()> {
        let logits = Tensor::randn(0f32, 1.0, (2, 4, 7), &Device::Cpu)?;
        let ids = Tensor::new(&[[1u32, 2, 3, 4], [0, 6, 5, 1]], &Device::Cpu)?;
        let mask = Tensor::ones((2, 3), DType::F32, &Device::Cpu)?;
        let terms = tdpo_terms(&logits, &logits, &ids, &mask)?;
        for v in [terms.margin, terms.kl] {
            assert!(v.abs()?.max(0)?.to_scalar::<f32>()? < 1e-6);
        }
        Ok(())
    }

    #[test]
    fn kl_of_a_uniform_reference_matches_closed_form() -> Result<()> {
        // Reference uniform over 2 tokens, policy (0.8, 0.2) at one position:
        // KL = ½ ln(½/0.8) + ½ ln(½/0.2) = 0.5·(−0.470004 + 0.916291) = 0.223144.
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[[0.8f32.ln(), 0.2f32.ln()], [0.0, 0.0]]], &dev)?;
        let ref_logits = Tensor::zeros((1, 2, 2), DType::F32, &dev)?;
        let ids = Tensor::new(&[[0u32, 1]], &dev)?;
        let mask = Tensor::ones((1, 1), DType::F32, &dev)?;
        let t = tdpo_terms(&logits, &ref_logits, &ids, &mask)?;
        assert!((t.kl.to_vec1::<f32>()?[0] - 0.223144).abs() < 1e-5);
        // margin = ln 0.2 − ln 0.5 = −0.916291.
        assert!((t.margin.to_vec1::<f32>()?[0] + 0.916291).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn tdpo_losses_match_hand_computed_values() -> Result<()> {
        // u = 1 − (−1) = 2, KL_w = 0.5, KL_l = 1.5; β = 0.5.
        // TDPO1: z = 0.5·(2 − 1) = 0.5, L = ln(1 + e^{−0.5}) = 0.474077.
        // TDPO2, α = 0.5: z = 0.5·(2 − 0.5) = 0.75, L = ln(1 + e^{−0.75}) = 0.386871.
        let t = |v: f32| Tensor::new(&[v], &Device::Cpu).unwrap();
        let terms = |m: f32, kl: f32| TdpoTerms {
            margin: t(m),
            kl: t(kl),
            logps: t(0.0),
        };
        let (w, l) = (terms(1.0, 0.5), terms(-1.0, 1.5));
        let mut p = TdpoParams {
            beta: 0.5,
            variant: TdpoVariant::Tdpo1,
            ..TdpoParams::default()
        };
        let one = tdpo_loss(&w, &l, &p)?.0.to_vec1::<f32>()?[0];
        p.variant = TdpoVariant::Tdpo2;
        let (two, rw, _) = tdpo_loss(&w, &l, &p)?;
        assert!(
            (one - 0.474077).abs() < 1e-5 && (two.to_vec1::<f32>()?[0] - 0.386871).abs() < 1e-5
        );
        assert_eq!(rw.to_vec1::<f32>()?, vec![0.75]);
        Ok(())
    }
}
