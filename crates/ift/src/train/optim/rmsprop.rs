//! RMSprop, as `torch.optim.RMSprop`'s single-tensor path with no momentum and not centred (the
//! IFT paper's optimizer):
//!
//! ```text
//! g  ← g + wd·p                              weight decay enters the gradient, as in torch
//! s  ← α·s + (1 − α)·g·g
//! p  ← p − lr · g / (√s + ε)                 ε outside the square root
//! ```

use candle_core::{Result, Tensor};

use super::OptimizerConfig;

/// State buffers, in the order kept in `bufs`.
pub(super) const BUFFERS: &[&str] = &["square_avg"];

/// Returns the updated parameter (f32); `bufs` is empty on the parameter's first step.
pub(super) fn update(
    cfg: &OptimizerConfig,
    lr: f64,
    param: &Tensor,
    grad: &Tensor,
    bufs: &mut Vec<Tensor>,
) -> Result<Tensor> {
    let alpha = cfg.alpha;
    if bufs.is_empty() {
        *bufs = vec![param.zeros_like()?];
    }
    let grad = match cfg.weight_decay {
        0.0 => grad.clone(),
        wd => (grad + param.affine(wd, 0.0)?)?,
    };
    let square_avg = (bufs[0].affine(alpha, 0.0)? + (grad.affine(1.0 - alpha, 0.0)? * &grad)?)?;
    bufs[0] = square_avg;
    let avg = bufs[0].sqrt()?.affine(1.0, cfg.eps)?;
    param + (grad / avg)?.affine(-lr, 0.0)?
}
