//! Prototype for the profile only (the model does not use it): softmax as a
//! single custom op whose backward is also a single pass, to measure what
//! fusing would save against `model::layers::softmax_last_dim`. (The fused
//! token log-probabilities graduated into `ift::loss::token_logprobs`.)

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Error, Layout, Result, Shape};
use candle_core::{Tensor, WithDType};

/// Fills `out` row by row (`f(row_index, row)`, rows of length `d`), split
/// over candle's thread count.
fn par_rows(out: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = candle_core::utils::get_num_threads().max(1);
    let per_thread = (out.len() / d).div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (c, chunk) in out.chunks_mut(per_thread * d).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (r, row) in chunk.chunks_mut(d).enumerate() {
                    f(c * per_thread + r, row)
                }
            });
        }
    });
}

fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg("fused op needs contiguous inputs".into()))?;
    Ok(&s.as_slice::<T>()?[a..b])
}

fn max_and_lse(x: &[f32]) -> (f32, f32) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x.iter().map(|&v| (v - max).exp()).sum();
    (max, max + sum.ln())
}

/// Softmax over the last dimension.
pub struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, d) = (slice::<f32>(s, l)?, *l.dims().last().expect("≥ 1-d"));
        let mut out = vec![0f32; x.len()];
        par_rows(&mut out, d, |r, o| {
            let (_, lse) = max_and_lse(&x[r * d..(r + 1) * d]);
            for (o, &v) in o.iter_mut().zip(&x[r * d..]) {
                *o = (v - lse).exp();
            }
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2(&grad.contiguous()?, SoftmaxGrad)?))
    }
}

/// `dx = p ⊙ (g − Σ g ⊙ p)` per row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (p, g) = (slice::<f32>(ps, pl)?, slice::<f32>(gs, gl)?);
        let d = *pl.dims().last().expect("≥ 1-d");
        let mut dx = vec![0f32; p.len()];
        par_rows(&mut dx, d, |r, o| {
            let (p, g) = (&p[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let dot: f32 = p.iter().zip(g).map(|(p, g)| p * g).sum();
            for ((o, p), g) in o.iter_mut().zip(p).zip(g) {
                *o = p * (g - dot);
            }
        });
        Ok((CpuStorage::F32(dx), pl.shape().clone()))
    }
}
