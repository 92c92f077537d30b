//! Numerically stable `log σ(x)` and `log(1 − eˣ)` from primitive ops.
//!
//! candle has no fused `log_sigmoid` or `log1p`; these are built only from ops
//! that record a backward pass (`abs`, `exp`, `log`, `maximum`).

use candle_core::{DType, Result, Tensor};

/// `log σ(x) = (x − |x|)/2 − log(1 + e^{−|x|})`, upcast to f32.
///
/// The naive `−log(1 + e^{−x})` overflows for large negative `x`; this form
/// never exponentiates a positive number. Writing `min(x, 0)` as `(x − |x|)/2`
/// (not `−relu(−x)`) keeps the gradient exact at `x = 0`, where DPO starts:
/// the kinks of both terms cancel whatever subgradient `|x|` reports there.
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    let a = x.abs()?;
    let tail = (a.neg()?.exp()? + 1.0)?.log()?;
    ((&x - &a)? * 0.5)? - tail
}

/// `log(1 − eˣ)` for `x < 0` (a log-probability), upcast to f32.
///
/// `1 − eˣ` is floored at `1e-7` so a probability that rounds to 1 in f32
/// gives a large finite negative value instead of `−∞` and a NaN gradient.
pub fn log1m_exp(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    x.exp()?.neg()?.affine(1.0, 1.0)?.maximum(1e-7f32)?.log()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn log_sigmoid_matches_closed_form_and_is_stable() -> Result<()> {
        let x = Tensor::new(&[0.0f32, 2.0, -2.0, -200.0, 200.0], &Device::Cpu)?;
        let got = log_sigmoid(&x)?.to_vec1::<f32>()?;
        // log σ(0) = −ln 2; log σ(±2) = −ln(1 + e^{∓2}); log σ(−200) ≈ −200.
        let want = [
            -std::f32::consts::LN_2,
            -(1.0 + (-2f32).exp()).ln(),
            -(1.0 + 2f32.exp()).ln(),
            -200.0,
            0.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        Ok(())
    }

    #[test]
    fn log_sigmoid_gradient_is_sigmoid_of_minus_x() -> Result<()> {
        // d/dx log σ(x) = 1 − σ(x) = σ(−x); at x = 0 that is 1/2, at x = 2 it is 1/(1 + e²).
        let x = Var::new(&[0.0f32, 2.0], &Device::Cpu)?;
        let grads = log_sigmoid(x.as_tensor())?.sum_all()?.backward()?;
        let g = grads.get(x.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!((g[0] - 0.5).abs() < 1e-6);
        assert!((g[1] - 1.0 / (1.0 + 2f32.exp())).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn log1m_exp_matches_closed_form() -> Result<()> {
        let x = Tensor::new(&[-std::f32::consts::LN_2, -1.0], &Device::Cpu)?;
        let got = log1m_exp(&x)?.to_vec1::<f32>()?;
        assert!((got[0] + std::f32::consts::LN_2).abs() < 1e-6); // log(1 − 1/2)
        assert!((got[1] - (1.0 - (-1f32).exp()).ln()).abs() < 1e-6);
        Ok(())
    }
}
