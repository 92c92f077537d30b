//! SwiGLU's gate: `a = silu(g) ∘ u` over `(rows, ffn)`, and its backward
//! `du = da ∘ silu(g)`, `dg = da ∘ u ∘ σ(g)(1 + g(1 − σ(g)))`.

use candle_core::{DType, Result, Tensor};

use rayon::prelude::*;

use super::simd::{exp, simd_fn};
use crate::engine::view::{fused, par_rows, F32View};

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

simd_fn! {
    /// One row of `silu(g) ∘ u`.
    fn swiglu_row(o: &mut [f32], g: &[f32], u: &[f32]) {
        for ((o, &x), &y) in o.iter_mut().zip(g).zip(u) {
            *o = x * sigmoid(x) * y;
        }
    }
}

simd_fn! {
    /// One row of [`swiglu_backward`]'s two gradients.
    fn swiglu_backward_row(dg: &mut [f32], du: &mut [f32], g: &[f32], u: &[f32], da: &[f32]) {
        // Every slice cut to one length, so the loop carries no bounds checks.
        let n = dg.len();
        let (du, g, u, da) = (&mut du[..n], &g[..n], &u[..n], &da[..n]);
        for i in 0..n {
            let (x, y, a) = (g[i], u[i], da[i]);
            let s = sigmoid(x);
            du[i] = a * x * s;
            dg[i] = a * y * s * (1.0 + x * (1.0 - s));
        }
    }
}

/// `silu(g) ∘ u`; `g`, `u` contiguous, same shape.
pub fn swiglu(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    if g.dtype() != DType::F32 {
        // bf16 training: the gate in f32, its output in g's dtype.
        let a = swiglu(&g.to_dtype(DType::F32)?, &u.to_dtype(DType::F32)?)?;
        return a.to_dtype(g.dtype());
    }
    if !fused(&[g, u]) {
        return g.silu()? * u;
    }
    let (gv, uv) = (F32View::new(g)?, F32View::new(u)?);
    let (gs, us) = (gv.get(), uv.get());
    let d = *g.dims().last().unwrap_or(&1);
    let mut out = vec![0f32; gs.len()];
    par_rows(&mut out, d, |r, o| {
        swiglu_row(o, &gs[r * d..(r + 1) * d], &us[r * d..(r + 1) * d]);
    });
    Tensor::from_vec(out, g.shape(), g.device())
}

/// `(dg, du)` of [`swiglu`] given `da`.
pub fn swiglu_backward(g: &Tensor, u: &Tensor, da: &Tensor) -> Result<(Tensor, Tensor)> {
    if g.dtype() != DType::F32 {
        let f = |t: &Tensor| t.to_dtype(DType::F32);
        let (dg, du) = swiglu_backward(&f(g)?, &f(u)?, &f(da)?)?;
        return Ok((dg.to_dtype(g.dtype())?, du.to_dtype(g.dtype())?));
    }
    if !fused(&[g, u, da]) {
        let s = candle_nn::ops::sigmoid(g)?;
        let silu = (g * &s)?;
        let du = (da * &silu)?;
        let dsilu = (&s * ((g * (1.0 - &s)?)? + 1.0)?)?;
        return Ok(((da * u)?.mul(&dsilu)?, du));
    }
    let (gv, uv, av) = (F32View::new(g)?, F32View::new(u)?, F32View::new(da)?);
    let (gs, us, as_) = (gv.get(), uv.get(), av.get());
    let d = *g.dims().last().unwrap_or(&1);
    // One pass writes both gradients.
    let (mut dg, mut du) = (vec![0f32; gs.len()], vec![0f32; gs.len()]);
    dg.par_chunks_mut(d)
        .zip(du.par_chunks_mut(d))
        .enumerate()
        .with_min_len(16)
        .for_each(|(r, (dg, du))| {
            let row = r * d..(r + 1) * d;
            swiglu_backward_row(dg, du, &gs[row.clone()], &us[row.clone()], &as_[row]);
        });
    let dg = Tensor::from_vec(dg, g.shape(), g.device())?;
    let du = Tensor::from_vec(du, g.shape(), g.device())?;
    Ok((dg, du))
}
