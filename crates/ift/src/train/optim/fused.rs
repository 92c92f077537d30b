//! AdamW and RMSprop updates as in-place CPU passes over f32 storage: the
//! moments and then the parameter are rewritten where they lie, in three
//! (AdamW) or two (RMSprop) passes, instead of a dozen whole-tensor
//! temporaries. Each element goes through exactly the f32 operations, in the
//! same order, as the candle-op version in `adamw.rs` / `rmsprop.rs` (candle's
//! `affine(m, a)` is `x·m + a` with `m`, `a` rounded to f32), so both give
//! bit-identical parameters; a test checks it.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

use super::OptimizerConfig;

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("fused optimizer needs contiguous tensors".into())
    })?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let (a, b) = l.contiguous_offsets().ok_or_else(|| {
        candle_core::Error::Msg("fused optimizer needs contiguous tensors".into())
    })?;
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("fused optimizer needs f32 tensors"),
    }
}

/// Whether the in-place path applies: every tensor f32, contiguous, on the CPU.
pub(super) fn applies(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous())
}

/// `dst ← f(dst, a)` elementwise.
struct Map2<F: Fn(f32, f32) -> f32>(F);

impl<F: Fn(f32, f32) -> f32> InplaceOp2 for Map2<F> {
    fn name(&self) -> &'static str {
        "fused-optimizer"
    }
    fn cpu_fwd(&self, d: &mut CpuStorage, dl: &Layout, a: &CpuStorage, al: &Layout) -> Result<()> {
        let a = slice(a, al)?;
        slice_mut(d, dl)?
            .iter_mut()
            .zip(a)
            .for_each(|(d, &a)| *d = (self.0)(*d, a));
        Ok(())
    }
}

/// `dst ← f(dst, a, b)` elementwise.
struct Map3<F: Fn(f32, f32, f32) -> f32>(F);

impl<F: Fn(f32, f32, f32) -> f32> InplaceOp3 for Map3<F> {
    fn name(&self) -> &'static str {
        "fused-optimizer"
    }
    fn cpu_fwd(
        &self,
        d: &mut CpuStorage,
        dl: &Layout,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<()> {
        let (a, b) = (slice(a, al)?, slice(b, bl)?);
        let d = slice_mut(d, dl)?;
        for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
            *d = (self.0)(*d, a, b);
        }
        Ok(())
    }
}

/// AdamW in place (see `adamw.rs` for the equations); `bufs` = [m, v].
pub(super) fn adamw(
    cfg: &OptimizerConfig,
    lr: f64,
    step: u64,
    p: &Tensor,
    g: &Tensor,
    bufs: &[Tensor],
) -> Result<()> {
    let (one_m_b1, b2, one_m_b2) = (
        (1.0 - cfg.beta1) as f32,
        cfg.beta2 as f32,
        (1.0 - cfg.beta2) as f32,
    );
    bufs[0].inplace_op2(g, &Map2(|m, g| m + ((g - m) * one_m_b1 + 0.0)))?;
    bufs[1].inplace_op2(g, &Map2(|v, g| (v * b2 + 0.0) + ((g * one_m_b2 + 0.0) * g)))?;
    let step = step as f64;
    let step_size = (-(lr / (1.0 - cfg.beta1.powf(step)))) as f32;
    let inv_bc2 = (1.0 / (1.0 - cfg.beta2.powf(step)).sqrt()) as f32;
    let eps = cfg.eps as f32;
    let decay = (cfg.weight_decay != 0.0).then_some((1.0 - lr * cfg.weight_decay) as f32);
    p.inplace_op3(
        &bufs[0],
        &bufs[1],
        &Map3(|p, m, v| {
            let p = decay.map_or(p, |d| p * d + 0.0);
            let denom = v.sqrt() * inv_bc2 + eps;
            p + ((m / denom) * step_size + 0.0)
        }),
    )
}

/// RMSprop in place (see `rmsprop.rs`); `bufs` = [square_avg].
pub(super) fn rmsprop(
    cfg: &OptimizerConfig,
    lr: f64,
    p: &Tensor,
    g: &Tensor,
    bufs: &[Tensor],
) -> Result<()> {
    let (alpha, one_m_alpha) = (cfg.alpha as f32, (1.0 - cfg.alpha) as f32);
    let wd = (cfg.weight_decay != 0.0).then_some(cfg.weight_decay as f32);
    let decayed = move |g: f32, p: f32| wd.map_or(g, |wd| g + (p * wd + 0.0));
    bufs[0].inplace_op3(
        g,
        p,
        &Map3(|s, g, p| {
            let g = decayed(g, p);
            (s * alpha + 0.0) + ((g * one_m_alpha + 0.0) * g)
        }),
    )?;
    let (eps, neg_lr) = (cfg.eps as f32, (-lr) as f32);
    p.inplace_op3(
        g,
        &bufs[0],
        &Map3(|p, g, s| {
            let g = decayed(g, p);
            p + ((g / (s.sqrt() * 1.0 + eps)) * neg_lr + 0.0)
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::optim::{adamw, rmsprop, OptimizerKind};
    use candle_core::Device;

    fn bits(t: &Tensor) -> Vec<u32> {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        v.into_iter().map(f32::to_bits).collect()
    }

    /// Three steps of each optimizer, with and without weight decay: the
    /// in-place path gives the candle-op path's parameters and moments bit for bit.
    #[test]
    fn in_place_updates_equal_the_candle_op_path_bitwise() {
        let dev = Device::Cpu;
        for (kind, wd) in [
            (OptimizerKind::AdamW, 0.0),
            (OptimizerKind::AdamW, 0.1),
            (OptimizerKind::RmsProp, 0.0),
            (OptimizerKind::RmsProp, 0.01),
        ] {
            let cfg = OptimizerConfig {
                kind,
                weight_decay: wd,
                ..OptimizerConfig::default()
            };
            let mut p_ref = Tensor::randn(0f32, 1.0, 257, &dev).unwrap();
            let p = p_ref.copy().unwrap();
            let (mut bufs_ref, n) = (Vec::new(), if kind == OptimizerKind::AdamW { 2 } else { 1 });
            let bufs: Vec<Tensor> = (0..n).map(|_| p.zeros_like().unwrap()).collect();
            for step in 1..=3u64 {
                let g = Tensor::randn(0f32, 1.0, 257, &dev).unwrap();
                p_ref = match kind {
                    OptimizerKind::AdamW => {
                        adamw::update(&cfg, 1e-2, step, &p_ref, &g, &mut bufs_ref)
                    }
                    _ => rmsprop::update(&cfg, 1e-2, &p_ref, &g, &mut bufs_ref),
                }
                .unwrap();
                match kind {
                    OptimizerKind::AdamW => adamw(&cfg, 1e-2, step, &p, &g, &bufs),
                    _ => rmsprop(&cfg, 1e-2, &p, &g, &bufs),
                }
                .unwrap();
                assert_eq!(
                    bits(&p),
                    bits(&p_ref),
                    "{kind:?} wd {wd} step {step}: parameter"
                );
                for (a, b) in bufs.iter().zip(&bufs_ref) {
                    assert_eq!(bits(a), bits(b), "{kind:?} wd {wd} step {step}: state");
                }
            }
        }
    }
}
