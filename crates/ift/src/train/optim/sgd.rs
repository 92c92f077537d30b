//! SGD with momentum, as `torch.optim.SGD`'s single-tensor path with dampening 0 and without
//! Nesterov:
//!
//! ```text
//! g  ← g + wd·p
//! b  ← g on the first step, then μ·b + g     (no buffer at all when μ = 0)
//! p  ← p − lr·b
//! ```

use candle_core::{Result, Tensor};

use super::OptimizerConfig;

/// State buffers, in the order kept in `bufs` (none when momentum is 0).
pub(super) const BUFFERS: &[&str] = &["momentum_buffer"];

/// Returns the updated parameter (f32); `bufs` is empty on the parameter's first step.
pub(super) fn update(
    cfg: &OptimizerConfig,
    lr: f64,
    param: &Tensor,
    grad: &Tensor,
    bufs: &mut Vec<Tensor>,
) -> Result<Tensor> {
    let grad = match cfg.weight_decay {
        0.0 => grad.clone(),
        wd => (grad + param.affine(wd, 0.0)?)?,
    };
    let direction = match (cfg.momentum, bufs.first()) {
        (0.0, _) => grad,
        // torch starts the buffer as a copy of the gradient, not from zero. Sharing the
        // gradient's storage instead of copying is safe: candle writes into a tensor only
        // through `Var::set`, and a gradient is not a var.
        (_, None) => grad,
        (momentum, Some(buf)) => (buf.affine(momentum, 0.0)? + grad)?,
    };
    if cfg.momentum != 0.0 {
        *bufs = vec![direction.clone()];
    }
    param + direction.affine(-lr, 0.0)?
}
