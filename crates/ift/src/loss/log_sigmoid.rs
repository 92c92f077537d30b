//! Numerically stable `log σ(x)` and `log(1 − eˣ)`, in f32.
//!
//! candle has no fused `log_sigmoid`, `log1p` or `expm1`: `log σ` is built from
//! ops that record a backward pass (`abs`, `exp`, `log`), and `log(1 − eˣ)` is a
//! small custom op that calls Rust's `exp_m1` / `ln_1p`.

use candle_core::{CpuStorage, CustomOp1, DType, Error, Layout, Result, Shape, Tensor};

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
/// Computed as `log(−expm1(x))` for `x > −ln 2` and `log1p(−eˣ)` below (Mächler's
/// rule), so neither a probability near 1 (`1 − eˣ` cancels) nor one near 0
/// loses precision. At `x = 0` the value is `−∞`, as it must be (an answer of
/// probability 1 has infinite odds). On CPU this is one op; its backward is
/// `−e^{x − log(1 − eˣ)} = −eˣ/(1 − eˣ)`, from the op's own output. Other devices
/// fall back to `log(max(1 − eˣ, 1e-7))`.
pub fn log1m_exp(x: &Tensor) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    if x.device().is_cpu() {
        x.apply_op1(Log1mExp)
    } else {
        x.exp()?.neg()?.affine(1.0, 1.0)?.maximum(1e-7f32)?.log()
    }
}

/// The scalar rule behind [`log1m_exp`].
fn log1m_exp_scalar(x: f32) -> f32 {
    if x > -std::f32::consts::LN_2 {
        (-x.exp_m1()).ln()
    } else {
        (-x.exp()).ln_1p()
    }
}

struct Log1mExp;

impl CustomOp1 for Log1mExp {
    fn name(&self) -> &'static str {
        "log1m_exp"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (a, b) = l
            .contiguous_offsets()
            .ok_or_else(|| Error::Msg("log1m_exp needs a contiguous input".into()))?;
        let out: Vec<f32> = s.as_slice::<f32>()?[a..b]
            .iter()
            .map(|&x| log1m_exp_scalar(x))
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let local = (arg - res)?.exp()?.neg()?;
        Ok(Some(grad_res.mul(&local)?))
    }
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
    fn log1m_exp_matches_closed_form_on_both_branches() -> Result<()> {
        // log(1 − 1/2) = −ln 2 at the branch point; log(1 − e^{−1}) = −0.4586751;
        // at x = −1e-6 the naive form loses half its digits: log(1 − e^{−1e-6}) = ln(9.999995e-7).
        let x = Tensor::new(&[-std::f32::consts::LN_2, -1.0, -1e-6, -30.0], &Device::Cpu)?;
        let got = log1m_exp(&x)?.to_vec1::<f32>()?;
        let want = [
            -std::f32::consts::LN_2,
            -0.458_675_1,
            (9.999_995e-7f32).ln(),
            -9.357_623e-14,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-7), "{g} vs {w}");
        }
        Ok(())
    }

    #[test]
    fn log1m_exp_gradient_is_minus_the_odds() -> Result<()> {
        // d/dx log(1 − eˣ) = −eˣ/(1 − eˣ): at x = −ln 2 that is −1; at x = −ln 4, −1/3.
        let x = Var::new(&[-std::f32::consts::LN_2, -(4f32.ln())], &Device::Cpu)?;
        let g = log1m_exp(x.as_tensor())?.sum_all()?.backward()?;
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>()?;
        assert!(
            (g[0] + 1.0).abs() < 1e-6 && (g[1] + 1.0 / 3.0).abs() < 1e-6,
            "{g:?}"
        );
        Ok(())
    }
}
