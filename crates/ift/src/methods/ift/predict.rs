//! IFT's one-step-ahead predictions from the no-gradient pass's logits.

use candle_core::{Result, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::sampling::{by_likelihood, nucleus_draw};

/// IFT's one-step-ahead prediction rule (`objective.prediction` and its
/// options, typed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prediction {
    /// `argmax` (the reference's default). Deterministic.
    Greedy,
    /// The `k`-th most likely token (the reference's "top-k": `k = 1` is
    /// greedy). Deterministic.
    TopK { k: usize },
    /// A seeded sample from the smallest set of tokens whose probability (at
    /// `temperature`) reaches `top_p`.
    Nucleus { top_p: f64, temperature: f64 },
}

impl Prediction {
    /// Whether the rule is the argmax (`Greedy`, or `TopK` with `k = 1`).
    pub fn is_greedy(&self) -> bool {
        matches!(self, Prediction::Greedy | Prediction::TopK { k: 0 | 1 })
    }
}

/// Predicted next token at every position, `(b, t)` u32, from `logits`
/// `(b, t, vocab)`. A sampled prediction at position `i` of row `r` draws
/// with a generator seeded from `row_seeds[r]` and `i` alone, so it does not
/// depend on which rows share a micro-batch nor on their padding.
pub fn predict_tokens(logits: &Tensor, rule: &Prediction, row_seeds: &[u64]) -> Result<Tensor> {
    if rule.is_greedy() {
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
            match *rule {
                Prediction::Nucleus { top_p, temperature } => {
                    let (r, i) = (n / t, (n % t) as u64);
                    let seed = row_seeds[r] ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let u = StdRng::seed_from_u64(seed).random::<f64>();
                    nucleus_draw(row, &order, top_p, temperature, u)
                }
                Prediction::TopK { k } => order[k.clamp(1, v) - 1] as u32,
                Prediction::Greedy => order[0] as u32,
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
