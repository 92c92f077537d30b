//! IFT's one-step-ahead predictions from the no-gradient pass's logits.

use candle_core::{Result, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::sampling::{by_likelihood, nucleus_draw};
use serde::{Deserialize, Serialize};

/// `objective.prediction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionMode {
    /// `argmax` (the reference's default). Deterministic.
    #[default]
    Greedy,
    /// The `top_k`-th most likely token (the reference's "top-k": with
    /// `top_k = 1` it is greedy). Deterministic.
    Topk,
    /// A sample from the smallest set of tokens whose probability (at
    /// `temperature`) reaches `top_p`. Seeded.
    Nucleus,
}

/// Settings of the prediction rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictionParams {
    pub mode: PredictionMode,
    pub top_k: usize,
    pub top_p: f64,
    pub temperature: f64,
}

impl PredictionParams {
    /// Whether the rule is the argmax (`greedy`, or `topk` with `top_k = 1`).
    pub fn is_greedy(&self) -> bool {
        self.mode == PredictionMode::Greedy
            || (self.mode == PredictionMode::Topk && self.top_k <= 1)
    }
}

/// Predicted next token at every position, `(b, t)` u32, from `logits`
/// `(b, t, vocab)`. A sampled prediction at position `i` of row `r` draws
/// with a generator seeded from `row_seeds[r]` and `i` alone, so it does not
/// depend on which rows share a micro-batch nor on their padding.
pub fn predict_tokens(
    logits: &Tensor,
    params: &PredictionParams,
    row_seeds: &[u64],
) -> Result<Tensor> {
    if params.is_greedy() {
        return logits.argmax(D::Minus1);
    }
    let (b, t, v) = logits.dims3()?;
    if row_seeds.len() != b {
        candle_core::bail!("{} row seeds for {b} rows", row_seeds.len());
    }
    let rows: Vec<Vec<f32>> = logits.reshape((b * t, v))?.to_vec2()?;
    let picked: Vec<u32> = rows
        .iter()
        .enumerate()
        .map(|(n, row)| {
            let order = by_likelihood(row);
            match params.mode {
                PredictionMode::Topk => order[params.top_k.min(v) - 1] as u32,
                _ => {
                    let (r, i) = (n / t, (n % t) as u64);
                    let seed = row_seeds[r] ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let u = StdRng::seed_from_u64(seed).random::<f64>();
                    nucleus_draw(row, &order, params.top_p, params.temperature, u)
                }
            }
        })
        .collect();
    Tensor::from_vec(picked, (b, t), logits.device())
}

/// A row's seed for [`predict_tokens`]: the step's seed and the row's
/// tokens (FNV-1a), whatever micro-batch the row is in.
pub fn row_seed(step_seed: u64, ids: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ step_seed;
    for &id in ids {
        for byte in id.to_le_bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}
