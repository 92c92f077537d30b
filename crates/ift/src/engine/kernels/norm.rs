//! RMSNorm forward and backward over `(rows, h)`, with `rstd = 1/√(mean x² + ε)`
//! kept from the forward:
//!
//! `y = w ∘ x · rstd`,
//! `dx = rstd · (w∘dy − x̂ · mean(w∘dy∘x̂))` with `x̂ = x · rstd`,
//! `dw = Σ_rows dy ∘ x̂`.

use candle_core::{DType, Result, Tensor, D};
use rayon::prelude::*;

use crate::engine::view::{fused, par_rows, F32View};

/// A normalised activation and the per-row `rstd` its backward needs.
pub struct Normed {
    /// `(rows, h)`.
    pub y: Tensor,
    /// `(rows, 1)`.
    pub rstd: Tensor,
}

/// `x`: `(rows, h)` contiguous; `w`: `(h,)`.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Normed> {
    if x.dtype() != DType::F32 {
        // bf16 training: the norm's arithmetic in f32, its output in x's dtype.
        let n = rms_norm(&x.to_dtype(DType::F32)?, w, eps)?;
        return Ok(Normed {
            y: n.y.to_dtype(x.dtype())?,
            rstd: n.rstd,
        });
    }
    if !fused(&[x, w]) {
        let rstd = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        let y = x.broadcast_mul(&rstd)?.broadcast_mul(w)?;
        return Ok(Normed { y, rstd });
    }
    let (rows, h) = x.dims2()?;
    let (xv, wv) = (F32View::new(x)?, F32View::new(w)?);
    let (xs, ws) = (xv.get(), wv.get());
    let mut rstd = vec![0f32; rows];
    par_rows(&mut rstd, 1, |r, o| {
        let row = &xs[r * h..(r + 1) * h];
        let mean = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
        // As the graph path: (mean + ε) in f32, then √ and 1/·.
        o[0] = 1.0 / (mean + eps as f32).sqrt();
    });
    let mut y = vec![0f32; rows * h];
    par_rows(&mut y, h, |r, o| {
        let row = &xs[r * h..(r + 1) * h];
        for ((o, &v), &g) in o.iter_mut().zip(row).zip(ws) {
            *o = v * rstd[r] * g;
        }
    });
    Ok(Normed {
        y: Tensor::from_vec(y, (rows, h), x.device())?,
        rstd: Tensor::from_vec(rstd, (rows, 1), x.device())?,
    })
}

/// Gradients `(dx (rows, h), dw (h,))` of [`rms_norm`] given `dy`; with
/// `residual` (the gradient reaching `x` past the norm, `dx`'s shape),
/// `residual + dx` instead, in the same pass.
pub fn rms_norm_backward(
    x: &Tensor,
    w: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    residual: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let plus = |dx: Tensor| -> Result<Tensor> {
        match residual {
            Some(r) => r + dx,
            None => Ok(dx),
        }
    };
    if x.dtype() != DType::F32 || dy.dtype() != DType::F32 {
        let (x32, dy32) = (x.to_dtype(DType::F32)?, dy.to_dtype(DType::F32)?);
        let (dx, dw) = rms_norm_backward(&x32, w, rstd, &dy32, None)?;
        return Ok((plus(dx.to_dtype(dy.dtype())?)?, dw));
    }
    if !fused(&[x, w, rstd, dy]) {
        let xhat = x.broadcast_mul(rstd)?;
        let wdy = dy.broadcast_mul(w)?;
        let dot = (&wdy * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = (wdy - xhat.broadcast_mul(&dot)?)?.broadcast_mul(rstd)?;
        let dw = (dy * xhat)?.sum(0)?;
        return Ok((plus(dx)?, dw));
    }
    let (rows, h) = x.dims2()?;
    let (xv, wv, rv, dv) = (
        F32View::new(x)?,
        F32View::new(w)?,
        F32View::new(rstd)?,
        F32View::new(dy)?,
    );
    let (xs, ws, rs, ds) = (xv.get(), wv.get(), rv.get(), dv.get());
    // A residual the kernel cannot read in place is added after it.
    let (in_pass, after) = match residual {
        Some(r) if fused(&[r]) && r.is_contiguous() => (Some(r), None),
        r => (None, r),
    };
    let res = in_pass.map(F32View::new).transpose()?;
    let res = res.as_ref().map(|r| r.get());
    let mut dx = vec![0f32; rows * h];
    par_rows(&mut dx, h, |r, o| {
        let (xr, dr, s) = (&xs[r * h..(r + 1) * h], &ds[r * h..(r + 1) * h], rs[r]);
        let dot: f32 = (0..h).map(|i| ws[i] * dr[i] * xr[i] * s).sum::<f32>() / h as f32;
        for i in 0..h {
            o[i] = s * (ws[i] * dr[i] - xr[i] * s * dot);
        }
        // As `residual + dx` (the same single rounding of each sum).
        if let Some(res) = res {
            for (o, &g) in o.iter_mut().zip(&res[r * h..(r + 1) * h]) {
                *o += g;
            }
        }
    });
    // dw: per-block partial sums, then one reduction.
    let block = rows
        .div_ceil(candle_core::utils::get_num_threads().max(1))
        .max(1);
    let dw = (0..rows.div_ceil(block))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0f32; h];
            for r in c * block..((c + 1) * block).min(rows) {
                let s = rs[r];
                for i in 0..h {
                    acc[i] += ds[r * h + i] * xs[r * h + i] * s;
                }
            }
            acc
        })
        .reduce(
            || vec![0f32; h],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
    let dx = Tensor::from_vec(dx, (rows, h), x.device())?;
    Ok((
        match after {
            Some(r) => (r + dx)?,
            None => dx,
        },
        Tensor::from_vec(dw, h, x.device())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::with_primitive_kernels;
    use candle_core::Device;

    /// The residual folded into the backward's pass equals adding it after,
    /// bit for bit (one rounding per sum either way), on the fused kernel and
    /// on the primitive fallback; and both agree with each other.
    #[test]
    fn residual_in_the_backward_equals_adding_it_after() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (7, 24), &dev).unwrap();
        let w = Tensor::randn(1f32, 0.1, 24, &dev).unwrap();
        let dy = Tensor::randn(0f32, 1.0, (7, 24), &dev).unwrap();
        let res = Tensor::randn(0f32, 1.0, (7, 24), &dev).unwrap();
        let run = || {
            let n = rms_norm(&x, &w, 1e-5).unwrap();
            let (dx, dw) = rms_norm_backward(&x, &w, &n.rstd, &dy, None).unwrap();
            let (dxr, dwr) = rms_norm_backward(&x, &w, &n.rstd, &dy, Some(&res)).unwrap();
            let after: Vec<f32> = (&res + &dx)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let folded: Vec<f32> = dxr.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(after, folded);
            assert_eq!(dw.to_vec1::<f32>().unwrap(), dwr.to_vec1::<f32>().unwrap());
            // A strided residual (added after the kernel) gives the same.
            let strided = res.t().unwrap().contiguous().unwrap().t().unwrap();
            let (dxs, _) = rms_norm_backward(&x, &w, &n.rstd, &dy, Some(&strided)).unwrap();
            let via: Vec<f32> = dxs.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(after, via);
            dxr
        };
        let fused = run();
        let primitive = with_primitive_kernels(run);
        let diff = crate::engine::view::max_abs_diff(&fused, &primitive);
        assert!(diff < 1e-5, "fused vs primitive: {diff}");
    }
}
