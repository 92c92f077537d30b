//! Batches: seeded, length-grouped order, right padding, plain `Vec` data, and candle tensors.

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::encode::{EncodedExample, EncodedKto, EncodedPreference};
use super::error::DataError;

/// Padding id: never attended, never trained, so any valid id will do.
pub const PAD_ID: u32 = 0;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchOptions {
    /// Sequences (or pairs) per batch. Default 8.
    pub batch_size: usize,
    /// Seed of the shuffle; the same seed and lengths always give the same batches. Default 0.
    pub seed: u64,
    /// Shuffle the examples (default true). Off: file order, for scoring.
    pub shuffle: bool,
    /// Group similar lengths into a batch to waste less compute on padding (default true):
    /// shuffled examples are cut into windows of `group_window` batches, each window sorted by
    /// length and split into batches, and the batch order shuffled again.
    pub group_by_length: bool,
    /// Batches per sorting window (default 32): larger wastes less padding, smaller is more random.
    pub group_window: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            seed: 0,
            shuffle: true,
            group_by_length: true,
            group_window: 32,
        }
    }
}

/// The example indices of each batch, given every example's length. Deterministic in `seed`
/// (for this `rand` version: `StdRng` streams may change across major versions).
pub fn batch_indices(lengths: &[usize], opts: &BatchOptions) -> Vec<Vec<usize>> {
    let size = opts.batch_size.max(1);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    if opts.shuffle {
        order.shuffle(&mut rng);
    }
    if opts.group_by_length {
        for window in order.chunks_mut(size * opts.group_window.max(1)) {
            // Stable sort, longest first: ties keep the shuffled order.
            window.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        }
    }
    let mut batches: Vec<Vec<usize>> = order.chunks(size).map(<[usize]>::to_vec).collect();
    if opts.shuffle && opts.group_by_length {
        batches.shuffle(&mut rng);
    }
    batches
}

/// Right-padded sequences. `attention_mask` is false on padding; `loss_mask` as in
/// [`EncodedExample`] and false on padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceBatch {
    pub input_ids: Vec<Vec<u32>>,
    pub attention_mask: Vec<Vec<bool>>,
    pub loss_mask: Vec<Vec<bool>>,
}

/// A [`SequenceBatch`] as tensors: `input_ids` u32 `(b, t)`, the masks f32 0/1 `(b, t)`.
#[derive(Debug, Clone)]
pub struct SequenceTensors {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub loss_mask: Tensor,
}

impl SequenceBatch {
    /// Pads every example on the right to the longest with `pad_id` (its value is never seen:
    /// both masks are false there).
    pub fn collate(examples: &[&EncodedExample], pad_id: u32) -> Self {
        let t = examples.iter().map(|e| e.len()).max().unwrap_or(0);
        let pad = |v: &[u32]| {
            v.iter()
                .copied()
                .chain(std::iter::repeat(pad_id))
                .take(t)
                .collect()
        };
        let padb = |v: &[bool]| {
            v.iter()
                .copied()
                .chain(std::iter::repeat(false))
                .take(t)
                .collect()
        };
        Self {
            input_ids: examples.iter().map(|e| pad(&e.input_ids)).collect(),
            attention_mask: examples
                .iter()
                .map(|e| padb(&vec![true; e.len()]))
                .collect(),
            loss_mask: examples.iter().map(|e| padb(&e.loss_mask)).collect(),
        }
    }

    pub fn batch_size(&self) -> usize {
        self.input_ids.len()
    }
    pub fn seq_len(&self) -> usize {
        self.input_ids.first().map_or(0, Vec::len)
    }
    pub fn num_trained(&self) -> usize {
        self.loss_mask.iter().flatten().filter(|&&m| m).count()
    }

    pub fn to_tensors(&self, device: &Device) -> Result<SequenceTensors, DataError> {
        let (b, t) = (self.batch_size(), self.seq_len());
        let ids: Vec<u32> = self.input_ids.iter().flatten().copied().collect();
        let f = |m: &[Vec<bool>]| -> Vec<f32> {
            m.iter()
                .flatten()
                .map(|&x| f32::from(u8::from(x)))
                .collect()
        };
        Ok(SequenceTensors {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(f(&self.attention_mask), (b, t), device)?,
            loss_mask: Tensor::from_vec(f(&self.loss_mask), (b, t), device)?,
        })
    }
}

/// Chosen and rejected sequences, row `i` of each from the same pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceBatch {
    pub chosen: SequenceBatch,
    pub rejected: SequenceBatch,
}

impl PreferenceBatch {
    pub fn collate(pairs: &[&EncodedPreference], pad_id: u32) -> Self {
        let chosen: Vec<&EncodedExample> = pairs.iter().map(|p| &p.chosen).collect();
        let rejected: Vec<&EncodedExample> = pairs.iter().map(|p| &p.rejected).collect();
        Self {
            chosen: SequenceBatch::collate(&chosen, pad_id),
            rejected: SequenceBatch::collate(&rejected, pad_id),
        }
    }

    /// Chosen rows then rejected rows in one batch padded to a common length, for a single
    /// forward pass over both; `pad_id` fills the extra padding.
    pub fn concatenated(&self, pad_id: u32) -> SequenceBatch {
        let t = self.chosen.seq_len().max(self.rejected.seq_len());
        let rows = self.chosen.input_ids.iter().chain(&self.rejected.input_ids);
        let ext = |v: &Vec<bool>| {
            v.iter()
                .copied()
                .chain(std::iter::repeat(false))
                .take(t)
                .collect()
        };
        let both = |a: &[Vec<bool>], b: &[Vec<bool>]| a.iter().chain(b).map(ext).collect();
        SequenceBatch {
            input_ids: rows
                .map(|v| {
                    v.iter()
                        .copied()
                        .chain(std::iter::repeat(pad_id))
                        .take(t)
                        .collect()
                })
                .collect(),
            attention_mask: both(&self.chosen.attention_mask, &self.rejected.attention_mask),
            loss_mask: both(&self.chosen.loss_mask, &self.rejected.loss_mask),
        }
    }
}

/// KTO sequences with their desirability labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KtoBatch {
    pub sequences: SequenceBatch,
    pub labels: Vec<bool>,
}

impl KtoBatch {
    pub fn collate(examples: &[&EncodedKto], pad_id: u32) -> Self {
        let seqs: Vec<&EncodedExample> = examples.iter().map(|k| &k.example).collect();
        Self {
            sequences: SequenceBatch::collate(&seqs, pad_id),
            labels: examples.iter().map(|k| k.label).collect(),
        }
    }
}
