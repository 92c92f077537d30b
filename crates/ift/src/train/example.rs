//! What the trainer consumes: encoded sequences with loss masks, and their
//! padded micro-batch tensors.

use candle_core::{Device, Tensor};

/// One encoded training sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    /// `loss_mask[i]`: token `i` is a training target (predicted from
    /// `input_ids[..i]`). `loss_mask[0]` is never used: it has no context.
    pub loss_mask: Vec<bool>,
}

impl Example {
    /// Number of trained target tokens.
    pub fn trained_tokens(&self) -> usize {
        self.loss_mask.iter().skip(1).filter(|&&m| m).count()
    }
}

/// A right-padded micro-batch as tensors.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    /// `(b, t)` u32, padding filled with 0 (never attended, never trained).
    pub input_ids: Tensor,
    /// `(b, t)` f32, 1 for real tokens.
    pub attention_mask: Tensor,
    /// Shifted loss mask: `target_mask[s][i]` = token `i + 1` of sequence `s`
    /// trains; every row has `t - 1` entries.
    pub target_mask: Vec<Vec<bool>>,
    /// Real (non-padding) tokens in the micro-batch.
    pub tokens: usize,
}

impl MicroBatch {
    /// Pads `examples` on the right to the longest one.
    pub fn new(examples: &[&Example], device: &Device) -> candle_core::Result<Self> {
        let b = examples.len();
        let t = examples
            .iter()
            .map(|e| e.input_ids.len())
            .max()
            .unwrap_or(0)
            .max(2);
        let mut ids = vec![0u32; b * t];
        let mut attention = vec![0f32; b * t];
        let mut target_mask = vec![vec![false; t - 1]; b];
        for (s, e) in examples.iter().enumerate() {
            for (i, &id) in e.input_ids.iter().enumerate() {
                ids[s * t + i] = id;
                attention[s * t + i] = 1.0;
                if i > 0 && e.loss_mask.get(i).copied().unwrap_or(false) {
                    target_mask[s][i - 1] = true;
                }
            }
        }
        Ok(MicroBatch {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(attention, (b, t), device)?,
            target_mask,
            tokens: examples.iter().map(|e| e.input_ids.len()).sum(),
        })
    }
}
