//! How token losses are averaged over an optimiser step, so that gradient
//! accumulation never changes the result: each token gets a coefficient
//! computed from the **whole step's** sequence and token counts, and a
//! micro-batch's loss is `Σ coef · ℓ` over its tokens.

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// `objective.normalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Mean over the step's sequences of each sequence's token-mean loss,
    /// as the IFT reference trains: `L = (1/B) Σ_s (1/n_s) Σ_t ℓ_{s,t}`.
    #[default]
    Sequence,
    /// Token mean over the whole step: `L = (1/N) Σ_{s,t} ℓ_{s,t}`.
    Token,
}

/// Totals of one optimiser step, over all its micro-batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTotals {
    /// Sequences in the step (`B`).
    pub sequences: usize,
    /// Trained (masked-in) target tokens in the step (`N`).
    pub tokens: usize,
}

/// Per-token coefficients `(b, t - 1)` for a micro-batch whose shifted loss
/// mask is `target_mask` (`target_mask[s][i]`: target token `i + 1` trains).
pub fn token_coefficients(
    target_mask: &[Vec<bool>],
    normalize: Normalize,
    totals: StepTotals,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let b = target_mask.len();
    let width = target_mask.iter().map(Vec::len).max().unwrap_or(0);
    let mut coef = vec![0f32; b * width];
    for (s, row) in target_mask.iter().enumerate() {
        let n = row.iter().filter(|&&m| m).count();
        let c = match normalize {
            Normalize::Sequence if n > 0 => 1.0 / (n as f64 * totals.sequences.max(1) as f64),
            Normalize::Sequence => 0.0,
            Normalize::Token => 1.0 / totals.tokens.max(1) as f64,
        };
        for (i, &m) in row.iter().enumerate() {
            if m {
                coef[s * width + i] = c as f32;
            }
        }
    }
    Tensor::from_vec(coef, (b, width), device)
}
