//! Token log-probabilities from whole logits (the role of `_get_batch_logps`
//! in the DPO reference), in the target layout: the labels are
//! `data::next_positions` of the ids, the one place they are shifted.

use candle_core::{DType, Result, Tensor, D};

use super::fused_logprobs::TokenLogprobsOp;
use crate::data::next_positions;

/// `log Σ exp(x)` over the last dimension, kept as `(..., 1)`. The max is
/// detached: it cancels exactly, so it needs no gradient.
pub fn logsumexp_keepdim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)
}

/// Log-softmax over the last dimension, differentiable (candle-nn's fused
/// softmax records no backward).
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    x.broadcast_sub(&logsumexp_keepdim(x)?)
}

/// Log-probability of each next token.
///
/// `logp[b, i] = log p(input_ids[b, i + 1] | input_ids[b, ..= i])`.
///
/// # Shapes
/// `logits`: `(b, t, vocab)` f32; `input_ids`: `(b, t)` u32. Returns `(b, t - 1)`.
/// Position `i` of the result belongs to target token `i + 1`: the mask
/// that goes with it is `data::Targets`' (or `data::target_mask`).
///
/// On the CPU this is one fused op with a one-pass backward
/// (`fused_logprobs`); elsewhere, [`token_logprobs_primitive`].
pub fn token_logprobs(logits: &Tensor, input_ids: &Tensor) -> Result<Tensor> {
    if logits.device().is_cpu()
        && logits.dtype() == DType::F32
        && input_ids.dtype() == DType::U32
        && logits.dim(1)? >= 2
    {
        return logits
            .contiguous()?
            .apply_op2(&next_positions(input_ids)?, TokenLogprobsOp);
    }
    token_logprobs_primitive(logits, input_ids)
}

/// [`token_logprobs`] from primitive candle ops (any device; the reference
/// the fused op is tested against).
pub fn token_logprobs_primitive(logits: &Tensor, input_ids: &Tensor) -> Result<Tensor> {
    let (_, t, _) = logits.dims3()?;
    let logits = logits.narrow(1, 0, t - 1)?;
    let targets = next_positions(input_ids)?.unsqueeze(2)?;
    let picked = logits.contiguous()?.gather(&targets, 2)?; // (b, t-1, 1)
    picked.sub(&logsumexp_keepdim(&logits)?)?.squeeze(2)
}

/// Mean of `values` over positions where `mask` is 1, over the whole batch.
///
/// # Shapes
/// `values`, `mask`: same shape; `mask` f32 0/1. Returns a scalar.
pub fn masked_mean(values: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let total = values.mul(mask)?.sum_all()?;
    let count = mask.sum_all()?.clamp(1f32, f32::MAX)?;
    total.div(&count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// The fused op equals the primitive version in value and gradient.
    #[test]
    fn fused_equals_primitive() {
        let mut rng = StdRng::seed_from_u64(0);
        let (b, t, v) = (3, 7, 50);
        let x: Vec<f32> = (0..b * t * v)
            .map(|_| rng.random_range(-4.0..4.0))
            .collect();
        let ids: Vec<u32> = (0..b * t).map(|_| rng.random_range(0..v as u32)).collect();
        let logits = Var::from_vec(x, (b, t, v), &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu).unwrap();
        let w: Vec<f32> = (0..b * (t - 1))
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let w = Tensor::from_vec(w, (b, t - 1), &Device::Cpu).unwrap();
        let fused = token_logprobs(logits.as_tensor(), &ids).unwrap();
        let prim = token_logprobs_primitive(logits.as_tensor(), &ids).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&fused, &prim) < 1e-5);
        let gf = fused
            .mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = prim.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(diff(gf.get(&logits).unwrap(), gp.get(&logits).unwrap()) < 1e-6);
    }

    #[test]
    fn out_of_vocabulary_id_is_an_error_not_a_panic() {
        let logits = Tensor::zeros((1, 3, 5), DType::F32, &Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![0u32, 9, 1], (1, 3), &Device::Cpu).unwrap();
        assert!(token_logprobs(&logits, &ids).is_err());
    }
}
