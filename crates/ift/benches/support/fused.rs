//! A prototype for the profile only (the model does not use it): softmax over
//! the last dimension as one custom op whose backward is also one pass,
//! `dx = p ⊙ (g − Σ g ⊙ p)`, to measure what fusing would save against the
//! primitive-op softmax in `model::layers`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Error, Layout, Result, Shape, Tensor};

/// Applies `f(input_row, output_row)` to every row of length `d`, split over
/// candle's thread count.
fn rows(x: &[f32], d: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    let threads = candle_core::utils::get_num_threads().max(1);
    let per = x.len().div_ceil(d).div_ceil(threads) * d;
    std::thread::scope(|s| {
        for (xs, os) in x.chunks(per).zip(out.chunks_mut(per)) {
            let f = &f;
            s.spawn(move || {
                for (xr, or) in xs.chunks(d).zip(os.chunks_mut(d)) {
                    f(xr, or)
                }
            });
        }
    });
    out
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| Error::Msg("fused softmax needs a contiguous input".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

pub struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = *l.dims().last().expect("at least 1-d");
        let out = rows(slice(s, l)?, d, |x, o| {
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for (o, &x) in o.iter_mut().zip(x) {
                *o = (x - max).exp();
                sum += *o;
            }
            o.iter_mut().for_each(|o| *o /= sum);
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.contiguous()?
                .apply_op2(&grad.contiguous()?, SoftmaxGrad)?,
        ))
    }
}

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
        let d = *pl.dims().last().expect("at least 1-d");
        let (p, g) = (slice(ps, pl)?, slice(gs, gl)?);
        let n = p.len();
        let mut dx = vec![0f32; n];
        let threads = candle_core::utils::get_num_threads().max(1);
        let per = (n / d).div_ceil(threads) * d;
        std::thread::scope(|s| {
            for (i, os) in dx.chunks_mut(per).enumerate() {
                let (p, g) = (&p[i * per..], &g[i * per..]);
                s.spawn(move || {
                    for (r, o) in os.chunks_mut(d).enumerate() {
                        let (pr, gr) = (&p[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
                        let dot: f32 = pr.iter().zip(gr).map(|(p, g)| p * g).sum();
                        for ((o, p), g) in o.iter_mut().zip(pr).zip(gr) {
                            *o = p * (g - dot);
                        }
                    }
                });
            }
        });
        Ok((CpuStorage::F32(dx), pl.shape().clone()))
    }
}
