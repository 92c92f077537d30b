//! The key/value cache for incremental decoding, and the cached forward pass.
//!
//! The cache is a value the caller owns and passes in, never state inside
//! the model: `forward` stays pure, and one model can serve several
//! generations at once.

use candle_core::{Result, Tensor};

use super::attention::attention_bias_new_rows;
use super::llama::LlamaForCausalLM;
use super::rope;

/// Per-layer keys and values of every position seen so far, each
/// `(b, kv_heads, t_past, head_dim)`, already rotated.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `model`.
    pub fn new(model: &LlamaForCausalLM) -> Self {
        Self {
            layers: vec![None; model.layers.len()],
        }
    }

    /// Positions cached so far (0 when empty).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache with its batch rows picked by `rows` (repeats allowed), so
    /// that several continuations can each extend a context computed once.
    pub fn select_rows(&self, rows: &[u32]) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => {
                    let idx = Tensor::new(rows, k.device())?;
                    Ok(Some((k.index_select(&idx, 0)?, v.index_select(&idx, 0)?)))
                }
                None => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }
}

impl LlamaForCausalLM {
    /// Forward over `t_new` new positions, attending to the cached ones too;
    /// appends this step's keys and values to `cache`. Uses the same
    /// projections, rotation and softmax as [`LlamaForCausalLM::forward`], so
    /// prefill + steps equals the full-sequence logits.
    ///
    /// # Shapes
    /// `ids`: `(b, t_new)` u32; `attention_mask`: `(b, t_past + t_new)`,
    /// non-zero for real tokens (past and new); `position_ids`: `(b, t_new)`,
    /// the rotary position of each new token (with left padding, the count of
    /// real tokens before it). Returns logits `(b, t_new, vocab)`.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        attention_mask: &Tensor,
        position_ids: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let x = self.hidden_cached(ids, attention_mask, position_ids, cache)?;
        self.head().forward(&x)
    }

    /// [`Self::forward_cached`] without the vocabulary head: the final-norm
    /// hidden states `(b, t_new, hidden)`, for callers that need logits at a
    /// few positions only ([`Self::head_logits`]).
    pub fn hidden_cached(
        &self,
        ids: &Tensor,
        attention_mask: &Tensor,
        position_ids: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (_, t_new) = ids.dims2()?;
        let t_all = attention_mask.dim(1)?;
        if t_all != cache.len() + t_new || cache.layers.len() != self.layers.len() {
            candle_core::bail!(
                "forward_cached: mask covers {t_all} positions, cache {} + new {t_new}",
                cache.len()
            );
        }
        let mut x = self.embed(ids)?;
        let (cos, sin) = rope::cos_sin_at(&self.inv_freq, position_ids)?;
        let bias = attention_bias_new_rows(attention_mask, t_new, self.config.sliding_window)?;
        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let h = layer.input_layernorm.forward(&x)?;
            x = (x + layer.self_attn.forward_cached(&h, &cos, &sin, &bias, kv)?)?;
            let h = layer.post_attention_layernorm.forward(&x)?;
            x = (x + layer.mlp.forward(&h)?)?;
        }
        self.norm.forward(&x)
    }

    /// Logits of final-norm hidden states (`(.., hidden)` → `(.., vocab)`).
    pub fn head_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.head().forward(hidden)
    }
}

/// Rotary positions `(b, t)` as transformers' `generate` derives them from a
/// left-padded mask: the number of real tokens before each position (its
/// cumulative sum minus one), padding positions set to 1 (they are never seen).
pub fn position_ids_from_mask(mask: &[Vec<u32>]) -> Vec<Vec<u32>> {
    mask.iter()
        .map(|row| {
            let mut seen = 0u32;
            row.iter()
                .map(|&m| {
                    if m == 0 {
                        1
                    } else {
                        seen += 1;
                        seen - 1
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::model::{Pretrained, Trainable};

    /// The inference snapshot's fused Q/K/V gives the three projections'
    /// cached forward, on the fixtures' GQA Llama, Llama 3 (rope scaling) and
    /// Qwen2 (q/k/v biases): a left-padded prefill, then single steps.
    #[test]
    fn fused_qkv_gives_the_three_projections_cached_forward() {
        let dev = Device::Cpu;
        for name in ["llama_gqa", "llama3_rope", "qwen2_tied"] {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/models")
                .join(name);
            let pre = Pretrained::load(&dir, &Trainable::None, &dev).unwrap();
            let plain = pre.model.detached();
            let fused = pre.model.for_inference().unwrap();
            assert!(plain.layers.iter().all(|l| l.self_attn.fused_qkv.is_none()));
            assert!(
                fused.layers.iter().all(|l| l.self_attn.fused_qkv.is_some()),
                "{name}"
            );
            let vocab = pre.model.config.vocab_size as u32;
            let ids: Vec<u32> = (0..2 * 9).map(|i| (i * 7 + 3) % vocab).collect();
            let ids = Tensor::from_vec(ids, (2, 9), &dev).unwrap();
            let mask = vec![vec![0, 0, 1, 1, 1, 1, 1, 1, 1], vec![1; 9]];
            let pos = position_ids_from_mask(&mask);
            let flat = |v: &[Vec<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
            let mask = Tensor::from_vec(flat(&mask), (2, 9), &dev).unwrap();
            let pos = Tensor::from_vec(flat(&pos), (2, 9), &dev).unwrap();
            let (mut c_plain, mut c_fused) = (KvCache::new(&plain), KvCache::new(&fused));
            for (start, len) in [(0, 6), (6, 1), (7, 1), (8, 1)] {
                let step = |m: &LlamaForCausalLM, c: &mut KvCache| {
                    m.forward_cached(
                        &ids.narrow(1, start, len).unwrap(),
                        &mask.narrow(1, 0, start + len).unwrap(),
                        &pos.narrow(1, start, len).unwrap(),
                        c,
                    )
                    .unwrap()
                };
                let (a, b) = (step(&plain, &mut c_plain), step(&fused, &mut c_fused));
                let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
                let diff = diff
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    diff < 1e-5,
                    "{name}: positions {start}..{}: {diff}",
                    start + len
                );
            }
        }
    }
}
