//! A run's examples, of the kind its objective trains on, and one step's share.

use super::encode::{EncodedExample, EncodedKto, EncodedPreference};

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

    /// Moves `round(fraction × len)` examples (at least one when `fraction >
    /// 0` and two or more remain) chosen with `seed` into a held-out set,
    /// returned; the rest keep their order. `data.eval_split`.
    pub fn split_off_eval(&mut self, fraction: f64, seed: u64) -> TrainData {
        fn take<T>(v: &mut Vec<T>, fraction: f64, seed: u64) -> Vec<T> {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            let n = v.len();
            let k = match fraction > 0.0 && n >= 2 {
                true => ((fraction * n as f64).round() as usize).clamp(1, n - 1),
                false => 0,
            };
            let mut idx: Vec<usize> = (0..n).collect();
            // Its own stream: the data order's shuffle keeps `train.seed` as is.
            idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed_e7a1));
            let mut held = vec![false; n];
            for &i in &idx[..k] {
                held[i] = true;
            }
            let (mut kept, mut out) = (Vec::with_capacity(n - k), Vec::with_capacity(k));
            for (x, h) in std::mem::take(v).into_iter().zip(held) {
                match h {
                    true => out.push(x),
                    false => kept.push(x),
                }
            }
            *v = kept;
            out
        }
        match self {
            TrainData::Sequences(v) => TrainData::Sequences(take(v, fraction, seed)),
            TrainData::Pairs(v) => TrainData::Pairs(take(v, fraction, seed)),
            TrainData::Unpaired(v) => TrainData::Unpaired(take(v, fraction, seed)),
        }
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

#[cfg(test)]
mod split_tests {
    use super::*;

    fn seqs(n: usize) -> TrainData {
        TrainData::Sequences(
            (0..n)
                .map(|i| EncodedExample {
                    input_ids: vec![i as u32, 1],
                    loss_mask: vec![false, true],
                })
                .collect(),
        )
    }

    fn firsts(d: &TrainData) -> Vec<u32> {
        match d {
            TrainData::Sequences(v) => v.iter().map(|e| e.input_ids[0]).collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_held_out_share_is_disjoint_seeded_and_keeps_the_rest_in_order() {
        let mut train = seqs(100);
        let held = train.split_off_eval(0.1, 7);
        let (kept, out) = (firsts(&train), firsts(&held));
        assert_eq!((kept.len(), out.len()), (90, 10));
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert!(out.iter().all(|i| !kept.contains(i)));
        let mut again = seqs(100);
        assert_eq!(firsts(&again.split_off_eval(0.1, 7)), out);
        let mut other = seqs(100);
        assert_ne!(firsts(&other.split_off_eval(0.1, 8)), out);
        // Never the whole set, and at least one example once asked for.
        let mut two = seqs(2);
        assert_eq!(two.split_off_eval(0.99, 0).len(), 1);
        let mut few = seqs(10);
        assert_eq!(few.split_off_eval(0.01, 0).len(), 1);
        assert_eq!(seqs(10).split_off_eval(0.0, 0).len(), 0);
    }
}
