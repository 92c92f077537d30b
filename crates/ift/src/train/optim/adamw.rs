//! AdamW, as `torch.optim.AdamW`'s single-tensor path (Loshchilov & Hutter, "Decoupled Weight
//! Decay Regularization"):
//!
//! ```text
//! p  ← p · (1 − lr·wd)                      decoupled decay, before the Adam step
//! m  ← m + (1 − β1)(g − m)                  torch's lerp_
//! v  ← β2·v + (1 − β2)·g·g
//! p  ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
//! ```
//!
//! `t` is the parameter's own step count. Scalars are computed in f64 as Python does, then
//! rounded to f32 inside the tensor op, as torch rounds Python floats.

use candle_core::{Result, Tensor};

use super::OptimizerConfig;

/// State buffers, in the order kept in `bufs`.
pub(super) const BUFFERS: &[&str] = &["exp_avg", "exp_avg_sq"];

/// Returns the updated parameter (f32); `bufs` is empty on the parameter's first step.
pub(super) fn update(
    cfg: &OptimizerConfig,
    lr: f64,
    step: u64,
    param: &Tensor,
    grad: &Tensor,
    bufs: &mut Vec<Tensor>,
) -> Result<Tensor> {
    let (beta1, beta2) = (cfg.beta1, cfg.beta2);
    if bufs.is_empty() {
        *bufs = vec![param.zeros_like()?, param.zeros_like()?];
    }
    let param = match cfg.weight_decay {
        0.0 => param.clone(),
        wd => param.affine(1.0 - lr * wd, 0.0)?,
    };
    // Each buffer is replaced as soon as its new value exists, so the old one is freed before
    // the next temporaries are allocated.
    let exp_avg = (&bufs[0] + (grad - &bufs[0])?.affine(1.0 - beta1, 0.0)?)?;
    bufs[0] = exp_avg;
    let exp_avg_sq = (bufs[1].affine(beta2, 0.0)? + (grad.affine(1.0 - beta2, 0.0)? * grad)?)?;
    bufs[1] = exp_avg_sq;

    let step = step as f64;
    let bias_correction1 = 1.0 - beta1.powf(step);
    let bias_correction2_sqrt = (1.0 - beta2.powf(step)).sqrt();
    let step_size = lr / bias_correction1;
    let denom = bufs[1]
        .sqrt()?
        .affine(1.0 / bias_correction2_sqrt, cfg.eps)?;
    param + (&bufs[0] / denom)?.affine(-step_size, 0.0)?
}
