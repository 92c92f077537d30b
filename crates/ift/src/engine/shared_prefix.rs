//! A pass that continues from another pass's first positions (IFT's
//! prediction and training passes agree on every position before the first
//! response token): [`SharedPrefix`] holds the recorded pass; `decode`
//! computes the later positions only and writes them into its buffers, so
//! the tape and outputs are whole, as if every position had been computed.

use candle_core::{Result, Tensor};

use super::decode::{Decoded, LayerTape};
use crate::model::LlamaForCausalLM;

/// A recorded pass whose first `len` positions of each sequence a later
/// pass reuses: that pass's input must equal this one's at those positions,
/// and the attention mask, the model and its compute dtype must be the same.
pub struct SharedPrefix {
    pub(super) len: usize,
    pub(super) dec: Decoded,
}

impl SharedPrefix {
    /// How many leading positions of each sequence a later pass reuses.
    pub fn positions(&self) -> usize {
        self.len
    }

    /// Whether a later pass of `model` can reuse a prefix at all: not with a
    /// LoRA adapter, whose dropout masks are drawn per element of each
    /// projection's whole input.
    pub fn applies_to(model: &LlamaForCausalLM) -> bool {
        model
            .layers
            .iter()
            .all(|l| l.projections().iter().all(|p| p.lora.is_none()))
    }
}

/// Rows `s..t` of each sequence of a `(b·t, c)` tensor, `(b·(t − s), c)`.
pub(super) fn suffix_rows(x: &Tensor, (b, t, s): (usize, usize, usize)) -> Result<Tensor> {
    let c = x.dim(1)?;
    x.reshape((b, t, c))?
        .narrow(1, s, t - s)?
        .contiguous()?
        .reshape((b * (t - s), c))
}

/// The first `s` rows of each sequence from `prefix` `(b·t, c)` followed by
/// `suffix` `(b·(t − s), c)`: a `(b·t, c)` tensor. The recorded pass's
/// buffers are its own (kernel outputs nothing else holds), so the later
/// rows are written into them in place: one copy of the new rows instead of
/// a new tensor.
pub(super) fn splice(
    prefix: Tensor,
    suffix: &Tensor,
    (b, t, s): (usize, usize, usize),
) -> Result<Tensor> {
    let c = suffix.dim(1)?;
    let whole = prefix.reshape((b, t, c))?;
    let tail = suffix.reshape((b, t - s, c))?;
    if whole.is_contiguous() && tail.is_contiguous() {
        whole.slice_set(&tail, 1, s)?;
        return Ok(prefix);
    }
    Tensor::cat(&[&whole.narrow(1, 0, s)?, &tail], 1)?.reshape((b * t, c))
}

/// [`splice`] into a new tensor, for a buffer the recorded pass may share
/// with its caller (its input embeddings).
fn splice_copy(
    prefix: &Tensor,
    suffix: &Tensor,
    (b, t, s): (usize, usize, usize),
) -> Result<Tensor> {
    let c = suffix.dim(1)?;
    let head = prefix.reshape((b, t, c))?.narrow(1, 0, s)?;
    Tensor::cat(&[&head, &suffix.reshape((b, t - s, c))?], 1)?.reshape((b * t, c))
}

/// [`splice`] along the time axis (2) of `(b, n, t, d)` heads.
pub(super) fn splice_heads(prefix: Tensor, suffix: &Tensor, s: usize) -> Result<Tensor> {
    if prefix.is_contiguous() && suffix.is_contiguous() {
        prefix.slice_set(suffix, 2, s)?;
        return Ok(prefix);
    }
    Tensor::cat(&[&prefix.narrow(2, 0, s)?, suffix], 2)
}

impl LayerTape {
    /// This tape of positions `s..t` (its attention's already whole) after
    /// `prefix`'s first `s` positions of each sequence. `first`: the first
    /// layer, whose input may be the caller's own embeddings (copied, never
    /// written).
    pub(super) fn after(
        self,
        prefix: LayerTape,
        bts: (usize, usize, usize),
        first: bool,
    ) -> Result<LayerTape> {
        if self.lora.iter().any(Option::is_some) {
            candle_core::bail!("a shared prefix cannot splice a LoRA adapter's dropout masks");
        }
        let sp = |p: Tensor, x: &Tensor| splice(p, x, bts);
        let x_in = match first {
            true => splice_copy(&prefix.x_in, &self.x_in, bts)?,
            false => sp(prefix.x_in, &self.x_in)?,
        };
        Ok(LayerTape {
            x_in,
            rstd1: sp(prefix.rstd1, &self.rstd1)?,
            h1: sp(prefix.h1, &self.h1)?,
            x_mid: sp(prefix.x_mid, &self.x_mid)?,
            rstd2: sp(prefix.rstd2, &self.rstd2)?,
            h2: sp(prefix.h2, &self.h2)?,
            gate: sp(prefix.gate, &self.gate)?,
            up: sp(prefix.up, &self.up)?,
            ..self
        })
    }
}
