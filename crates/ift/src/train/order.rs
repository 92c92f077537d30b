//! Which examples each optimiser step sees: a pure function of the seed and
//! the step, so a resumed run sees exactly the batches an unbroken one would.

use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};

/// How many consecutive batches are sorted by length together: enough to
/// cut padding, few enough that batch order stays well mixed.
const LENGTH_GROUP_BATCHES: usize = 16;

/// The batch plan of a run.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    lengths: Vec<usize>,
    batch_size: usize,
    seed: u64,
}

impl BatchPlan {
    /// `lengths[i]` is the token length of example `i`.
    pub fn new(lengths: Vec<usize>, batch_size: usize, seed: u64) -> Self {
        BatchPlan {
            lengths,
            batch_size: batch_size.max(1),
            seed,
        }
    }

    /// Optimiser steps per epoch (the last batch may be short).
    pub fn steps_per_epoch(&self) -> u64 {
        self.lengths.len().div_ceil(self.batch_size) as u64
    }

    /// Example indices of optimiser step `step` (zero-based, across epochs).
    pub fn batch(&self, step: u64) -> Vec<usize> {
        let per_epoch = self.steps_per_epoch().max(1);
        let (epoch, index) = (step / per_epoch, (step % per_epoch) as usize);
        self.epoch_batches(epoch).swap_remove(index)
    }

    /// The batches of one epoch: a seeded shuffle, then length-grouped in
    /// windows of [`LENGTH_GROUP_BATCHES`] batches, then batch order shuffled.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        order.shuffle(&mut rng);
        let window = self.batch_size * LENGTH_GROUP_BATCHES;
        for chunk in order.chunks_mut(window) {
            // Stable sort: ties keep their shuffled order.
            chunk.sort_by_key(|&i| std::cmp::Reverse(self.lengths[i]));
        }
        let mut batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        batches.shuffle(&mut rng);
        batches
    }
}
