//! One decoder projection in the explicit engine, forward and backward, for
//! every kind of base weight (trainable, frozen, quantised) with or without a
//! LoRA adapter: `y = x Wᵀ + b + s · (dropout(x) Aᵀ) Bᵀ`.
//!
//! What the backward keeps of an adapter is only its small hidden
//! `h = dropout(x) Aᵀ` `(rows, r)`; the dropout mask is drawn again from its
//! seed (`Lora::dropout_mask`, a pure function of seed and element index)
//! instead of being stored, so LoRA adds `rows × r` floats per projection to
//! the tape, not the `rows × in` masks and dropped inputs a graph would keep.

use candle_core::{DType, Result, Tensor};

use super::kernels::matmul::{matmul, matmul_add, residual_matmul};
use crate::model::{peft_name, Linear, Lora, Weight};

/// `x Wᵀ + b (+ the adapter's delta)` on `(rows, in)`, never recording a
/// graph; with `record`, also the adapter hidden the backward needs. With
/// `residual`, `residual + (that)`, summed inside the matmul where the
/// projection is a plain weight (no bias, no adapter).
pub(super) fn project(
    x: &Tensor,
    l: &Linear,
    record: bool,
    residual: Option<&Tensor>,
) -> Result<(Tensor, Option<Tensor>)> {
    let dt = x.dtype();
    let plain = l.bias.is_none() && l.lora.is_none();
    let (y, residual) = match (&l.weight, residual) {
        (Weight::Dense(w) | Weight::Frozen(w), Some(r)) if plain => {
            (residual_matmul(r, x, &cast(w, dt)?.t()?)?, None)
        }
        (Weight::Dense(w) | Weight::Frozen(w), r) => (matmul(x, &cast(w, dt)?.t()?)?, r),
        // candle's quantised matmul takes f32 activations.
        (Weight::Quantized(q), r) => (q.forward(&x.to_dtype(DType::F32)?)?.to_dtype(dt)?, r),
    };
    let y = match &l.bias {
        Some(b) => y.broadcast_add(&cast(b, dt)?)?,
        None => y,
    };
    let (y, h) = match &l.lora {
        None => (y, None),
        Some(a) => {
            let h = matmul(&a.dropped(x)?, &cast(&a.lora_a, dt)?.t()?)?;
            let y = (y + (matmul(&h, &cast(&a.lora_b, dt)?.t()?)? * a.scaling)?)?;
            (y, record.then_some(h))
        }
    };
    let y = match residual {
        Some(r) => (r + y)?,
        None => y,
    };
    Ok((y, h))
}

/// A weight in the compute dtype `dt` (bf16 training casts the f32 master
/// copy for each use; f32 is a no-op).
fn cast(w: &Tensor, dt: DType) -> Result<Tensor> {
    w.detach().to_dtype(dt)
}

/// A projection's gradients given `dy` `(rows, out)`: `dx` is returned (or
/// `into + dx`, accumulated in place where the matmul backend can: `into`
/// must be a temporary the caller owns alone, such as another projection's
/// `dx`), and `put(name, grad)` receives `dW`, `db`, `lora_A` and `lora_B`
/// (in f32, the master weights' dtype) for those `wants(name)` (the
/// trainable ones). `h` is what [`project`] recorded.
#[allow(clippy::too_many_arguments)]
pub(super) fn project_backward(
    module: &str,
    l: &Linear,
    x: &Tensor,
    h: Option<&Tensor>,
    dy: &Tensor,
    into: Option<Tensor>,
    wants: &dyn Fn(&str) -> bool,
    put: &mut dyn FnMut(String, Tensor),
) -> Result<Tensor> {
    let dt = dy.dtype();
    let w = format!("{module}.weight");
    if wants(&w) {
        put(w, matmul(&dy.t()?, x)?.to_dtype(DType::F32)?);
    }
    let bias = format!("{module}.bias");
    if l.bias.is_some() && wants(&bias) {
        put(bias, dy.to_dtype(DType::F32)?.sum(0)?);
    }
    let dx = match (&l.weight, into) {
        (Weight::Dense(w) | Weight::Frozen(w), Some(c)) => matmul_add(c, dy, &cast(w, dt)?)?,
        (Weight::Dense(w) | Weight::Frozen(w), None) => matmul(dy, &cast(w, dt)?)?,
        (Weight::Quantized(q), into) => {
            let dx = q.input_grad(&dy.to_dtype(DType::F32)?)?.to_dtype(dt)?;
            match into {
                Some(c) => (c + dx)?,
                None => dx,
            }
        }
    };
    match (&l.lora, h) {
        (Some(a), Some(h)) => dx + lora_backward(module, a, x, h, dy, wants, put)?,
        (Some(_), None) => candle_core::bail!("{module}: the tape holds no adapter hidden"),
        (None, _) => Ok(dx),
    }
}

/// `s · B A dropout(x)`'s part: `dB = s·dyᵀ h`, `dA = (s·dy B)ᵀ dropout(x)`,
/// and the input gradient `dropout⁻¹(s·dy B A)` (the same mask).
fn lora_backward(
    module: &str,
    a: &Lora,
    x: &Tensor,
    h: &Tensor,
    dy: &Tensor,
    wants: &dyn Fn(&str) -> bool,
    put: &mut dyn FnMut(String, Tensor),
) -> Result<Tensor> {
    let dt = dy.dtype();
    let dys = (dy * a.scaling)?;
    let name_b = peft_name(module, "lora_B");
    if wants(&name_b) {
        put(name_b, matmul(&dys.t()?, h)?.to_dtype(DType::F32)?);
    }
    let dh = matmul(&dys, &cast(&a.lora_b, dt)?)?; // (rows, r)
    drop(dys);
    let mask = match a.dropout_mask(x)? {
        Some(m) => Some(m.to_dtype(dt)?),
        None => None,
    };
    let name_a = peft_name(module, "lora_A");
    if wants(&name_a) {
        let d_a = match &mask {
            Some(m) => matmul(&dh.t()?, &(x * m)?)?,
            None => matmul(&dh.t()?, x)?,
        };
        put(name_a, d_a.to_dtype(DType::F32)?);
    }
    let dx = matmul(&dh, &cast(&a.lora_a, dt)?)?;
    match mask {
        Some(m) => dx * m,
        None => Ok(dx),
    }
}
