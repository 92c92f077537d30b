//! IFT's one-step-ahead predictions from the no-gradient pass's logits.

use candle_core::{Result, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};
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
/// `(b, t, vocab)`. `seed` makes sampling reproducible (one per step).
pub fn predict_tokens(logits: &Tensor, params: &PredictionParams, seed: u64) -> Result<Tensor> {
    if params.is_greedy() {
        return logits.argmax(D::Minus1);
    }
    let (b, t, v) = logits.dims3()?;
    let rows: Vec<Vec<f32>> = logits.reshape((b * t, v))?.to_vec2()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let picked: Vec<u32> = rows
        .iter()
        .map(|row| {
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &c| row[c].total_cmp(&row[a]));
            match params.mode {
                PredictionMode::Topk => order[params.top_k.min(v) - 1] as u32,
                _ => nucleus(row, &order, params, &mut rng),
            }
        })
        .collect();
    Tensor::from_vec(picked, (b, t), logits.device())
}

fn nucleus(row: &[f32], order: &[usize], params: &PredictionParams, rng: &mut StdRng) -> u32 {
    let temp = params.temperature.max(1e-6);
    let max = row[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((row[i] as f64 - max) / temp).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let (mut kept, mut mass) = (0, 0.0);
    while kept < order.len() && (kept == 0 || mass < params.top_p * total) {
        mass += weights[kept];
        kept += 1;
    }
    let mut draw = rng.random::<f64>() * mass;
    for (k, w) in weights[..kept].iter().enumerate() {
        draw -= w;
        if draw <= 0.0 {
            return order[k] as u32;
        }
    }
    order[kept - 1] as u32
}
