//! The head's rows: only the positions whose log-probability a pass needs.
//!
//! Every objective and evaluation reads the log-probabilities of the trained
//! (or scored) tokens only: a prompt's positions are masked out of the loss.
//! The vocabulary head is the costliest layer per row (SmolLM2: 49,152 × 576
//! weights against a layer's 3.5 M, and a log-softmax over the vocabulary), so
//! the engine multiplies only the wanted rows and scatters their results back.
//! The other positions read 0 and get no gradient, which is what a masked loss
//! gives them anyway.

use candle_core::{DType, Device, Result, Tensor};

/// The `(b, t − 1)` target positions a pass needs, as [`target_mask`] gives
/// them (row `i` of a sequence: the prediction of token `i + 1`); `None`: all.
///
/// [`target_mask`]: crate::data::target_mask
pub type Wanted<'a> = Option<&'a [Vec<bool>]>;

/// The wanted rows when they are not all of them.
pub(super) struct Selected {
    /// Flat indices into the `b·(t − 1)` targets, u32.
    pub targets: Tensor,
    /// The same rows as indices into the `b·t` hidden states, u32.
    pub positions: Tensor,
}

impl Selected {
    /// `Some` when `wanted` leaves out at least one of the `b·(t − 1)` rows
    /// and keeps at least one (with none, the whole head runs: a batch without
    /// a scored token is rare, and this keeps the head's shapes non-empty).
    pub fn new(
        wanted: Wanted<'_>,
        (b, t): (usize, usize),
        device: &Device,
    ) -> Result<Option<Self>> {
        let Some(rows) = wanted else {
            return Ok(None);
        };
        if rows.len() != b || rows.iter().any(|r| r.len() != t - 1) {
            candle_core::bail!(
                "the wanted rows are {} × {:?}, the batch's targets {b} × {}",
                rows.len(),
                rows.first().map(Vec::len),
                t - 1
            );
        }
        let mut targets = Vec::new();
        let mut positions = Vec::new();
        for (bi, row) in rows.iter().enumerate() {
            for (i, _) in row.iter().enumerate().filter(|(_, &w)| w) {
                targets.push((bi * (t - 1) + i) as u32);
                positions.push((bi * t + i) as u32);
            }
        }
        if targets.is_empty() || targets.len() == b * (t - 1) {
            return Ok(None);
        }
        Ok(Some(Self {
            targets: Tensor::new(targets, device)?,
            positions: Tensor::new(positions, device)?,
        }))
    }

    /// The selected rows of the `(b·t, hidden)` final hidden states and of
    /// the `(b·(t − 1),)` targets.
    pub fn gather(&self, hidden: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            hidden.index_select(&self.positions, 0)?,
            targets.index_select(&self.targets, 0)?,
        ))
    }

    /// `(n,)` values of the selected rows back at their place in `(len,)`
    /// zeros (through f32, exact for token ids below 2²⁴), in `values`' dtype.
    pub fn scatter_targets(&self, values: &Tensor, len: usize) -> Result<Tensor> {
        let dtype = values.dtype();
        let v = values.to_dtype(DType::F32)?;
        Tensor::zeros(len, DType::F32, v.device())?
            .index_add(&self.targets, &v, 0)?
            .to_dtype(dtype)
    }
}
