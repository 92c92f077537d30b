//! One decoder projection in the explicit engine, forward and backward, for
//! every kind of base weight (trainable, frozen, quantised) with or without a
//! LoRA adapter: `y = x Wᵀ + b + s · (dropout(x) Aᵀ) Bᵀ`.
//!
//! What the backward keeps of an adapter is only its small hidden
//! `h = dropout(x) Aᵀ` `(rows, r)`; the dropout mask is drawn again from its
//! seed (`Lora::dropout_mask`, a pure function of seed and element index)
//! instead of being stored, so LoRA adds `rows × r` floats per projection to
//! the tape, not the `rows × in` masks and dropped inputs a graph would keep.

use candle_core::{Result, Tensor};

use crate::model::{peft_name, Linear, Lora, Weight};

/// `x Wᵀ + b (+ the adapter's delta)` on `(rows, in)`, never recording a
/// graph; with `record`, also the adapter hidden the backward needs.
pub(super) fn project(x: &Tensor, l: &Linear, record: bool) -> Result<(Tensor, Option<Tensor>)> {
    let y = match &l.weight {
        Weight::Dense(w) | Weight::Frozen(w) => x.matmul(&w.detach().t()?)?,
        Weight::Quantized(q) => q.forward(&x.detach())?,
    };
    let y = match &l.bias {
        Some(b) => y.broadcast_add(&b.detach())?,
        None => y,
    };
    let Some(a) = &l.lora else {
        return Ok((y, None));
    };
    let xd = match a.dropout_mask(x)? {
        Some(m) => (x * m)?,
        None => x.clone(),
    };
    let h = xd.matmul(&a.lora_a.detach().t()?)?;
    drop(xd);
    let y = (y + (h.matmul(&a.lora_b.detach().t()?)? * a.scaling)?)?;
    Ok((y, record.then_some(h)))
}

/// A projection's gradients given `dy` `(rows, out)`: `dx` is returned, and
/// `put(name, grad)` receives `dW`, `db`, `lora_A` and `lora_B` for those
/// `wants(name)` (the trainable ones). `h` is what [`project`] recorded.
pub(super) fn project_backward(
    module: &str,
    l: &Linear,
    x: &Tensor,
    h: Option<&Tensor>,
    dy: &Tensor,
    wants: &dyn Fn(&str) -> bool,
    put: &mut dyn FnMut(String, Tensor),
) -> Result<Tensor> {
    let w = format!("{module}.weight");
    if wants(&w) {
        put(w, dy.t()?.matmul(x)?);
    }
    let bias = format!("{module}.bias");
    if l.bias.is_some() && wants(&bias) {
        put(bias, dy.sum(0)?);
    }
    let dx = match &l.weight {
        Weight::Dense(w) | Weight::Frozen(w) => dy.matmul(&w.detach())?,
        Weight::Quantized(q) => q.input_grad(dy)?,
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
    let dys = (dy * a.scaling)?;
    let name_b = peft_name(module, "lora_B");
    if wants(&name_b) {
        put(name_b, dys.t()?.matmul(h)?);
    }
    let dh = dys.matmul(&a.lora_b.detach())?; // (rows, r)
    drop(dys);
    let mask = a.dropout_mask(x)?;
    let name_a = peft_name(module, "lora_A");
    if wants(&name_a) {
        let d_a = match &mask {
            Some(m) => dh.t()?.matmul(&(x * m)?)?,
            None => dh.t()?.matmul(x)?,
        };
        put(name_a, d_a);
    }
    let dx = dh.matmul(&a.lora_a.detach())?;
    match mask {
        Some(m) => dx * m,
        None => Ok(dx),
    }
}
