//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_`: one L2 norm over all
//! parameters' gradients, and when it exceeds `max_norm` every gradient is scaled by
//! `max_norm / (norm + 1e-6)`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

use super::optim::OptimError;

/// The norm before clipping and the factor applied to the gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipOutcome {
    /// Global L2 norm of the gradients before clipping (the `grad_norm` metric).
    pub norm: f32,
    /// Factor the gradients were multiplied by; 1 when they were left alone.
    pub scale: f32,
}

impl ClipOutcome {
    /// False for a NaN or infinite norm: the step must be skipped (the gradients were not
    /// scaled, since a non-finite scale would only spread the damage).
    pub fn is_finite(&self) -> bool {
        self.norm.is_finite()
    }

    pub fn clipped(&self) -> bool {
        self.scale < 1.0
    }
}

/// Global L2 norm, in f32, of the gradients of `vars` present in `grads` (a var without a
/// gradient contributes nothing).
pub fn global_grad_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f32, OptimError> {
    let mut sum_sq: Option<Tensor> = None;
    for (_, var) in vars {
        let Some(grad) = grads.get(var.as_tensor()) else {
            continue;
        };
        // Summed as a tensor so that a GPU run synchronises once, not once per parameter.
        let sq = grad.to_dtype(DType::F32)?.sqr()?.sum_all()?;
        sum_sq = Some(match sum_sq {
            None => sq,
            Some(acc) => (acc + sq)?,
        });
    }
    Ok(match sum_sq {
        None => 0.0,
        Some(s) => s.sqrt()?.to_scalar::<f32>()?,
    })
}

/// Measures the global norm and, when it is finite and above `max_norm`, replaces each gradient
/// in `grads` by a scaled copy (the old tensors are not modified). `max_norm <= 0` only measures,
/// as `transformers` treats a non-positive `max_grad_norm`.
pub fn clip_grad_norm(
    grads: &mut GradStore,
    vars: &[(String, Var)],
    max_norm: f64,
) -> Result<ClipOutcome, OptimError> {
    let norm = global_grad_norm(grads, vars)?;
    // f32 arithmetic, as torch computes the coefficient from the f32 norm tensor.
    let scale = max_norm as f32 / (norm + 1e-6);
    if !norm.is_finite() || max_norm <= 0.0 || scale >= 1.0 {
        return Ok(ClipOutcome { norm, scale: 1.0 });
    }
    for (_, var) in vars {
        let Some(grad) = grads.get(var.as_tensor()) else {
            continue;
        };
        let scaled = grad.affine(f64::from(scale), 0.0)?;
        grads.insert(var.as_tensor(), scaled);
    }
    Ok(ClipOutcome { norm, scale })
}
