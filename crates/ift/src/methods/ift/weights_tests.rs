use super::*;
use candle_core::{Device, Var};

fn row(v: &[f32]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

/// Spec §3's closed form for loss/left/L1, computed independently in f64:
/// `L = Σ_t ℓ_t G_t / Σ_s G_s`, `G_t = Σ_{k≥t} γ^{k−t} ℓ_k`.
fn closed_form(l: &[f64], gamma: f64) -> f64 {
    let g: Vec<f64> = (0..l.len())
        .map(|t| {
            (t..l.len())
                .map(|k| gamma.powi((k - t) as i32) * l[k])
                .sum()
        })
        .collect();
    l.iter().zip(&g).map(|(a, b)| a * b).sum::<f64>() / g.iter().sum::<f64>()
}

#[test]
fn default_weights_give_the_closed_form() -> Result<()> {
    // ℓ = 1, 2, 3 with γ = 0.5: G = 2.75, 3.5, 3, so L = 18.75 / 9.25. A masked prompt
    // token before and a pad after must not change it.
    let p = PropagationParams {
        gamma: 0.5,
        ..PropagationParams::default()
    };
    let (l, m) = (
        row(&[5.0, 1.0, 2.0, 3.0, 7.0]),
        row(&[0.0, 1.0, 1.0, 1.0, 0.0]),
    );
    let w = propagation_weights(&l, &m, &p)?;
    let loss = weighted_loss(&l, &m, &w)?.to_scalar::<f32>()?;
    assert!((loss as f64 - 18.75 / 9.25).abs() < 1e-5, "{loss}");
    assert!((closed_form(&[1.0, 2.0, 3.0], 0.5) - 18.75 / 9.25).abs() < 1e-12);
    let w = w.squeeze(0)?.to_vec1::<f32>()?;
    assert_eq!((w[0], w[4]), (0.0, 0.0));
    assert!(
        (w[1..4].iter().sum::<f32>() - 3.0).abs() < 1e-5,
        "weights average 1"
    );
    Ok(())
}

#[test]
fn gamma_zero_reduces_to_token_mean_nll() -> Result<()> {
    let p = PropagationParams {
        gamma: 0.0,
        ..PropagationParams::default()
    };
    let l = Tensor::new(&[[1.0f32, 2.0, 4.0], [3.0, 5.0, 9.0]], &Device::Cpu)?;
    let m = Tensor::new(&[[1.0f32, 1.0, 1.0], [0.0, 1.0, 1.0]], &Device::Cpu)?;
    let w = propagation_weights(&l, &m, &p)?;
    assert_eq!(
        w.to_vec2::<f32>()?,
        vec![vec![1.0, 1.0, 1.0], vec![0.0, 1.0, 1.0]]
    );
    // Sequence means 7/3 and 7, batch mean 14/3.
    assert!((weighted_loss(&l, &m, &w)?.to_scalar::<f32>()? - 14.0 / 3.0).abs() < 1e-5);
    Ok(())
}

#[test]
fn gradient_flows_through_the_weights() -> Result<()> {
    // Autograd must match a central finite difference of the closed form; with the
    // weights detached it is just w_t / N instead.
    let l0 = [1.0f64, 2.0, 3.0];
    let var = Var::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu)?;
    let m = row(&[1.0, 1.0, 1.0]);
    let p = PropagationParams::default();
    let w = propagation_weights(var.as_tensor(), &m, &p)?;
    let g = weighted_loss(var.as_tensor(), &m, &w)?.backward()?;
    let g = g
        .get(var.as_tensor())
        .unwrap()
        .squeeze(0)?
        .to_vec1::<f32>()?;
    let wd = w.detach().squeeze(0)?.to_vec1::<f32>()?;
    for t in 0..3 {
        let (mut up, mut down) = (l0, l0);
        up[t] += 1e-5;
        down[t] -= 1e-5;
        let fd = (closed_form(&up, 0.95) - closed_form(&down, 0.95)) / 2e-5;
        assert!((g[t] as f64 - fd).abs() < 1e-4, "t={t}: {} vs {fd}", g[t]);
        assert!(
            (g[t] - wd[t] / 3.0).abs() > 1e-3,
            "weights were detached at t={t}"
        );
    }
    Ok(())
}

#[test]
fn right_side_inverts_accumulated_past_loss() -> Result<()> {
    // ℓ = 1, 2, γ = 0.5: c = 0.5, 1; G = 0.5, 1.25; + min non-zero 0.5 → 1, 1.75;
    // w ∝ 1, 1/1.75, normalised to sum 2: 2·1.75/2.75 and 2/2.75.
    let p = PropagationParams {
        side: PropagationSide::Right,
        gamma: 0.5,
        ..PropagationParams::default()
    };
    let w = propagation_weights(&row(&[1.0, 2.0]), &row(&[1.0, 1.0]), &p)?
        .squeeze(0)?
        .to_vec1::<f32>()?;
    assert!(
        (w[0] - 3.5 / 2.75).abs() < 1e-5 && (w[1] - 2.0 / 2.75).abs() < 1e-5,
        "{w:?}"
    );
    Ok(())
}

#[test]
fn left_norms_transform_loss_to_go() -> Result<()> {
    // ℓ = 1, 3 (N = 2), γ = 1: c = 0.5, 1.5 and G = 2, 1.5.
    let (l, m) = (row(&[1.0, 3.0]), row(&[1.0, 1.0]));
    let w = |norm| -> Result<Vec<f32>> {
        let p = PropagationParams {
            norm,
            gamma: 1.0,
            ..PropagationParams::default()
        };
        propagation_weights(&l, &m, &p)?
            .squeeze(0)?
            .to_vec1::<f32>()
    };
    let close = |a: Vec<f32>, b: [f32; 2]| (a[0] - b[0]).abs() < 1e-5 && (a[1] - b[1]).abs() < 1e-5;
    assert!(close(
        w(PropagationNorm::L1)?,
        [2.0 * 2.0 / 3.5, 2.0 * 1.5 / 3.5]
    ));
    assert!(close(
        w(PropagationNorm::L2)?,
        [2.0 * 4.0 / 6.25, 2.0 * 2.25 / 6.25]
    ));
    let (e2, e15) = (2f32.exp(), 1.5f32.exp());
    assert!(close(
        w(PropagationNorm::Softmax)?,
        [2.0 * e2 / (e2 + e15), 2.0 * e15 / (e2 + e15)]
    ));
    let (a, b) = (3f32.ln(), 2.5f32.ln());
    assert!(close(
        w(PropagationNorm::Log)?,
        [2.0 * a / (a + b), 2.0 * b / (a + b)]
    ));
    Ok(())
}

#[test]
fn options_deserialise_from_lowercase_names() {
    let p: PropagationParams =
        serde_json::from_str(r#"{"item":"mask","side":"right","norm":"softmax"}"#).unwrap();
    assert_eq!(
        (p.item, p.side, p.norm, p.gamma),
        (
            PropagationItem::Mask,
            PropagationSide::Right,
            PropagationNorm::Softmax,
            0.95
        )
    );
}

#[test]
fn undetached_weights_can_give_negative_effective_weights() {
    // Spec §3: with gradient through w, ∂L/∂ℓ_t can be negative. For ℓ = 5, 0.1, 0.1
    // (γ = 0.95) raising a late loss lowers L: the closed form's finite differences are
    // about −0.765 and −1.588 at t = 1, 2, and autograd must agree.
    let l0 = [5.0f64, 0.1, 0.1];
    let var = Var::new(&[[5.0f32, 0.1, 0.1]], &Device::Cpu).unwrap();
    let m = row(&[1.0, 1.0, 1.0]);
    let w = propagation_weights(var.as_tensor(), &m, &PropagationParams::default()).unwrap();
    let g = weighted_loss(var.as_tensor(), &m, &w)
        .unwrap()
        .backward()
        .unwrap();
    let g = g
        .get(var.as_tensor())
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for t in 1..3 {
        let (mut up, mut down) = (l0, l0);
        up[t] += 1e-5;
        down[t] -= 1e-5;
        let fd = (closed_form(&up, 0.95) - closed_form(&down, 0.95)) / 2e-5;
        assert!(
            fd < -0.5 && (g[t] as f64 - fd).abs() < 1e-3,
            "t={t}: {} vs {fd}",
            g[t]
        );
    }
}
