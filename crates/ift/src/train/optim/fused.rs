//! AdamW and RMSprop updates as in-place CPU passes over f32 storage: the
//! moments and the parameter are rewritten where they lie, in one pass over
//! each element (spread over rayon's pool in blocks), instead of a dozen
//! whole-tensor temporaries. Each element goes through exactly the f32
//! operations, in the same order, as the candle-op version in `adamw.rs` /
//! `rmsprop.rs` (candle's `affine(m, a)` is `x·m + a` with `m`, `a` rounded
//! to f32), so both give bit-identical parameters; a test checks it.

use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

use super::OptimizerConfig;
use crate::engine::view::F32View;

/// Elements per parallel task: small tensors (norm weights, biases) stay on
/// one thread, large ones are split without a task per cache line.
const BLOCK: usize = 1 << 15;

/// Whether the in-place path applies: every tensor f32, contiguous, on the CPU.
pub(super) fn applies(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous())
}

/// Hands `f` a tensor's storage as a mutable slice, under candle's write
/// lock of that storage (an in-place op whose body is `f`).
struct WithMut<F>(Mutex<Option<F>>);

impl<F: FnOnce(&mut [f32]) -> Result<()>> InplaceOp1 for WithMut<F> {
    fn name(&self) -> &'static str {
        "fused-optimizer"
    }
    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let (a, b) = l.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("fused optimizer needs contiguous tensors".into())
        })?;
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("fused optimizer needs f32 tensors")
        };
        let f = self.0.lock().ok().and_then(|mut f| f.take());
        match f {
            Some(f) => f(&mut v[a..b]),
            None => candle_core::bail!("fused optimizer: op body already ran"),
        }
    }
}

fn with_mut(t: &Tensor, f: impl FnOnce(&mut [f32]) -> Result<()>) -> Result<()> {
    t.inplace_op1(&WithMut(Mutex::new(Some(f))))
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
    let step = step as f64;
    let step_size = (-(lr / (1.0 - cfg.beta1.powf(step)))) as f32;
    let inv_bc2 = (1.0 / (1.0 - cfg.beta2.powf(step)).sqrt()) as f32;
    let eps = cfg.eps as f32;
    let decay = (cfg.weight_decay != 0.0).then_some((1.0 - lr * cfg.weight_decay) as f32);
    let gv = F32View::new(g)?;
    let gs = gv.get();
    // Three distinct storages, each under its own write lock.
    with_mut(&bufs[0], |ms| {
        with_mut(&bufs[1], |vs| {
            with_mut(p, |ps| {
                check_lengths(&[ps.len(), ms.len(), vs.len(), gs.len()])?;
                ps.par_chunks_mut(BLOCK)
                    .zip(ms.par_chunks_mut(BLOCK))
                    .zip(vs.par_chunks_mut(BLOCK))
                    .zip(gs.par_chunks(BLOCK))
                    .for_each(|(((ps, ms), vs), gs)| {
                        for (((p, m), v), &g) in ps.iter_mut().zip(ms).zip(vs).zip(gs) {
                            *m = *m + ((g - *m) * one_m_b1 + 0.0);
                            *v = (*v * b2 + 0.0) + ((g * one_m_b2 + 0.0) * g);
                            let q = decay.map_or(*p, |d| *p * d + 0.0);
                            let denom = v.sqrt() * inv_bc2 + eps;
                            *p = q + ((*m / denom) * step_size + 0.0);
                        }
                    });
                Ok(())
            })
        })
    })
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
    let (eps, neg_lr) = (cfg.eps as f32, (-lr) as f32);
    let gv = F32View::new(g)?;
    let gs = gv.get();
    with_mut(&bufs[0], |ss| {
        with_mut(p, |ps| {
            check_lengths(&[ps.len(), ss.len(), gs.len()])?;
            ps.par_chunks_mut(BLOCK)
                .zip(ss.par_chunks_mut(BLOCK))
                .zip(gs.par_chunks(BLOCK))
                .for_each(|((ps, ss), gs)| {
                    for ((p, s), &g) in ps.iter_mut().zip(ss).zip(gs) {
                        let g = decayed(g, *p);
                        *s = (*s * alpha + 0.0) + ((g * one_m_alpha + 0.0) * g);
                        *p += (g / (s.sqrt() * 1.0 + eps)) * neg_lr + 0.0;
                    }
                });
            Ok(())
        })
    })
}

fn check_lengths(lens: &[usize]) -> Result<()> {
    if lens.iter().any(|&n| n != lens[0]) {
        candle_core::bail!("fused optimizer: tensors of different sizes {lens:?}");
    }
    Ok(())
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
            let mut p_ref = Tensor::randn(0f32, 1.0, 2 * BLOCK + 257, &dev).unwrap();
            let p = p_ref.copy().unwrap();
            let (mut bufs_ref, n) = (Vec::new(), if kind == OptimizerKind::AdamW { 2 } else { 1 });
            let bufs: Vec<Tensor> = (0..n).map(|_| p.zeros_like().unwrap()).collect();
            for step in 1..=3u64 {
                let g = Tensor::randn(0f32, 1.0, 2 * BLOCK + 257, &dev).unwrap();
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
