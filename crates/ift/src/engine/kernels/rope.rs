//! RoPE fused with the head transpose. Forward: a projection `(b·t, n·d)` →
//! rotated heads `(b, n, t, d)`, `y = x∘cos + rotate_half(x)∘sin` with HF's
//! `rotate_half(x) = [−x₂, x₁]`. Backward: `dx = dy∘cos + rotate_halfᵀ(dy∘sin)`
//! with `rotate_halfᵀ(z) = [z₂, −z₁]`, transposed back to `(b·t, n·d)`.
//! `cos`/`sin` are [`crate::model::rope::cos_sin`]'s `(t, d)` tables, so both
//! paths rotate by the same f32 values.

use candle_core::{DType, Result, Tensor, D};

use crate::engine::view::{fused, par_rows, F32View};

/// The shape of one projection split into heads.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub b: usize,
    pub t: usize,
    pub n: usize,
    pub d: usize,
}

/// `x` `(b·t, n·d)` → rotated `(b, n, t, d)`.
pub fn rope_to_heads(x: &Tensor, s: Heads, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 {
        // bf16 training: rotate in f32, return x's dtype.
        return rope_to_heads(&x.to_dtype(DType::F32)?, s, cos, sin)?.to_dtype(x.dtype());
    }
    let Heads { b, t, n, d } = s;
    if !fused(&[x, cos, sin]) {
        let x = x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()?;
        return crate::model::rope::apply_rotary(&x, cos, sin);
    }
    let (xv, cv, sv) = (F32View::new(x)?, F32View::new(cos)?, F32View::new(sin)?);
    let (xs, cs, ss) = (xv.get(), cv.get(), sv.get());
    let half = d / 2;
    let mut out = vec![0f32; b * n * t * d];
    par_rows(&mut out, d, |r, o| {
        let (bi, hi, ti) = (r / (n * t), (r / t) % n, r % t);
        let src = &xs[((bi * t + ti) * n + hi) * d..][..d];
        let (c, s) = (&cs[ti * d..][..d], &ss[ti * d..][..d]);
        for i in 0..half {
            o[i] = src[i] * c[i] - src[i + half] * s[i];
            o[i + half] = src[i + half] * c[i + half] + src[i] * s[i + half];
        }
    });
    Tensor::from_vec(out, (b, n, t, d), x.device())
}

/// The gradient of [`rope_to_heads`]: `dy` `(b, n, t, d)` → `(b·t, n·d)`.
pub fn rope_from_heads_backward(
    dy: &Tensor,
    s: Heads,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<Tensor> {
    if dy.dtype() != DType::F32 {
        let dx = rope_from_heads_backward(&dy.to_dtype(DType::F32)?, s, cos, sin)?;
        return dx.to_dtype(dy.dtype());
    }
    let Heads { b, t, n, d } = s;
    if !fused(&[dy, cos, sin]) {
        let half = d / 2;
        let zs = dy.broadcast_mul(sin)?;
        let rot_t = Tensor::cat(
            &[
                &zs.narrow(D::Minus1, half, half)?,
                &zs.narrow(D::Minus1, 0, half)?.neg()?,
            ],
            D::Minus1,
        )?;
        let dx = (dy.broadcast_mul(cos)? + rot_t)?;
        return dx.transpose(1, 2)?.contiguous()?.reshape((b * t, n * d));
    }
    let dy = dy.contiguous()?;
    let (dv, cv, sv) = (F32View::new(&dy)?, F32View::new(cos)?, F32View::new(sin)?);
    let (ds, cs, ss) = (dv.get(), cv.get(), sv.get());
    let half = d / 2;
    let mut out = vec![0f32; b * t * n * d];
    par_rows(&mut out, d, |r, o| {
        let (bi, ti, hi) = (r / (t * n), (r / n) % t, r % n);
        let src = &ds[((bi * n + hi) * t + ti) * d..][..d];
        let (c, s) = (&cs[ti * d..][..d], &ss[ti * d..][..d]);
        for i in 0..half {
            o[i] = src[i] * c[i] + src[i + half] * s[i + half];
            o[i + half] = src[i + half] * c[i + half] - src[i] * s[i];
        }
    });
    Tensor::from_vec(out, (b * t, n * d), dy.device())
}
