//! A run's examples, of the kind its objective trains on, and one step's share.

use crate::data::{EncodedExample, EncodedKto, EncodedPreference};

/// The encoded training (or evaluation) set.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainData {
    /// SFT and IFT.
    Sequences(Vec<EncodedExample>),
    /// DPO, ORPO, SimPO, TDPO: `batch_size` counts pairs.
    Pairs(Vec<EncodedPreference>),
    /// KTO: `batch_size` counts records.
    Unpaired(Vec<EncodedKto>),
}

/// The examples of one optimiser step (or one evaluation batch).
#[derive(Debug, Clone, Copy)]
pub enum StepBatch<'a> {
    Sequences(&'a [&'a EncodedExample]),
    Pairs(&'a [&'a EncodedPreference]),
    Unpaired(&'a [&'a EncodedKto]),
}

/// The same, owned by the step (references into a [`TrainData`]).
#[derive(Debug, Clone)]
pub enum StepExamples<'a> {
    Sequences(Vec<&'a EncodedExample>),
    Pairs(Vec<&'a EncodedPreference>),
    Unpaired(Vec<&'a EncodedKto>),
}

impl<'a> StepExamples<'a> {
    pub fn as_batch(&self) -> StepBatch<'_> {
        match self {
            StepExamples::Sequences(v) => StepBatch::Sequences(v),
            StepExamples::Pairs(v) => StepBatch::Pairs(v),
            StepExamples::Unpaired(v) => StepBatch::Unpaired(v),
        }
    }
}

impl TrainData {
    pub fn len(&self) -> usize {
        match self {
            TrainData::Sequences(v) => v.len(),
            TrainData::Pairs(v) => v.len(),
            TrainData::Unpaired(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token length of each example, for length-grouped batching (a pair counts
    /// both sequences: they run in the same micro-batch).
    pub fn lengths(&self) -> Vec<usize> {
        match self {
            TrainData::Sequences(v) => v.iter().map(EncodedExample::len).collect(),
            TrainData::Pairs(v) => v
                .iter()
                .map(|p| p.chosen.len() + p.rejected.len())
                .collect(),
            TrainData::Unpaired(v) => v.iter().map(|k| k.example.len()).collect(),
        }
    }

    /// The examples at `indices`.
    pub fn select(&self, indices: &[usize]) -> StepExamples<'_> {
        match self {
            TrainData::Sequences(v) => {
                StepExamples::Sequences(indices.iter().map(|&i| &v[i]).collect())
            }
            TrainData::Pairs(v) => StepExamples::Pairs(indices.iter().map(|&i| &v[i]).collect()),
            TrainData::Unpaired(v) => {
                StepExamples::Unpaired(indices.iter().map(|&i| &v[i]).collect())
            }
        }
    }

    /// Consecutive chunks of `size` in file order (evaluation batches).
    pub fn chunks(&self, size: usize) -> Vec<StepExamples<'_>> {
        let n = self.len();
        (0..n)
            .step_by(size.max(1))
            .map(|s| self.select(&(s..(s + size.max(1)).min(n)).collect::<Vec<_>>()))
            .collect()
    }
}

impl StepBatch<'_> {
    /// Examples in the batch (pairs count once).
    pub fn len(&self) -> usize {
        match self {
            StepBatch::Sequences(v) => v.len(),
            StepBatch::Pairs(v) => v.len(),
            StepBatch::Unpaired(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Real tokens (both sequences of a pair).
    pub fn tokens(&self) -> usize {
        match self {
            StepBatch::Sequences(v) => v.iter().map(|e| e.len()).sum(),
            StepBatch::Pairs(v) => v.iter().map(|p| p.chosen.len() + p.rejected.len()).sum(),
            StepBatch::Unpaired(v) => v.iter().map(|k| k.example.len()).sum(),
        }
    }

    /// Trained tokens (both answers of a pair).
    pub fn trained_tokens(&self) -> usize {
        match self {
            StepBatch::Sequences(v) => v.iter().map(|e| e.num_trained()).sum(),
            StepBatch::Pairs(v) => v
                .iter()
                .map(|p| p.chosen.num_trained() + p.rejected.num_trained())
                .sum(),
            StepBatch::Unpaired(v) => v.iter().map(|k| k.example.num_trained()).sum(),
        }
    }
}
