use super::*;
use candle_core::{Device, Var};

fn t(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn pairs(c: &[f32], r: &[f32], nc: &[f32], nr: &[f32]) -> PairLogps {
    PairLogps {
        chosen: t(c),
        rejected: t(r),
        chosen_len: t(nc),
        rejected_len: t(nr),
    }
}

fn dpo(beta: f64, eps: f64, loss_type: DpoLossType) -> DpoParams {
    DpoParams {
        beta,
        label_smoothing: eps,
        loss_type,
        sft_weight: 0.0,
    }
}

#[test]
fn dpo_loss_matches_hand_computed_values() -> Result<()> {
    // h = (−1 − −3) − (−2 − −2) = 2 and h = 0; β = 0.5 ⇒ βh = 1 and 0.
    // L = (ln(1 + e^{−1}), ln 2) = (0.313262, 0.693147).
    let p = pairs(&[-1.0, -4.0], &[-3.0, -4.0], &[1.0, 1.0], &[1.0, 1.0]);
    let r = p.with_logps(t(&[-2.0, -5.0]), t(&[-2.0, -5.0]));
    let out = dpo_loss(&p, &r, &dpo(0.5, 0.0, DpoLossType::Sigmoid))?;
    let l = out.losses.to_vec1::<f32>()?;
    assert!(
        (l[0] - 0.313262).abs() < 1e-5 && (l[1] - std::f32::consts::LN_2).abs() < 1e-5,
        "{l:?}"
    );
    assert!((out.mean()?.to_scalar::<f32>()? - 0.503204).abs() < 1e-5);
    assert_eq!(out.chosen_rewards.to_vec1::<f32>()?, vec![0.5, 0.5]);
    assert_eq!(out.rejected_rewards.to_vec1::<f32>()?, vec![-0.5, 0.5]);
    Ok(())
}

#[test]
fn label_smoothing_hinge_and_ipo_match_hand_computed_values() -> Result<()> {
    let z = t(&[0.0]);
    // h = 2, β = 0.5, ε = 0.25: 0.75·ln(1 + e^{−1}) + 0.25·ln(1 + e^{1}) = 0.234947 + 0.328315.
    let p = pairs(&[-1.0], &[-3.0], &[1.0], &[1.0]);
    let r = p.with_logps(z.clone(), z.clone());
    let l = |params| -> Result<f32> { dpo_loss(&p, &r, &params)?.mean()?.to_scalar::<f32>() };
    assert!((l(dpo(0.5, 0.25, DpoLossType::Sigmoid))? - 0.563262).abs() < 1e-5);
    // Hinge: max(0, 1 − 0.5·2) = 0; with β = 0.25: 1 − 0.5 = 0.5.
    assert_eq!(l(dpo(0.5, 0.0, DpoLossType::Hinge))?, 0.0);
    assert!((l(dpo(0.25, 0.0, DpoLossType::Hinge))? - 0.5).abs() < 1e-6);
    // IPO averages by length first: chosen −1/1, rejected −3/2 ⇒ h = 0.5; β = 0.5:
    // (0.5 − 1)² = 0.25 (the sum-based h = 2 would give 1).
    let p2 = pairs(&[-1.0], &[-3.0], &[1.0], &[2.0]);
    let r2 = p2.with_logps(z.clone(), z);
    let ipo = dpo_loss(&p2, &r2, &dpo(0.5, 0.0, DpoLossType::Ipo))?;
    assert!((ipo.mean()?.to_scalar::<f32>()? - 0.25).abs() < 1e-6);
    assert_eq!(ipo.rejected_rewards.to_vec1::<f32>()?, vec![-0.75]);
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
    let out = dpo_loss_summed(c.as_tensor(), r.as_tensor(), &z, &z, &DpoParams::default())?;
    let g = out.mean()?.backward()?;
    assert!((g.get(c.as_tensor()).unwrap().to_vec1::<f32>()?[0] + 0.05).abs() < 1e-6);
    assert!((g.get(r.as_tensor()).unwrap().to_vec1::<f32>()?[0] - 0.05).abs() < 1e-6);
    Ok(())
}
