//! Which examples each optimiser step sees: a pure function of the seed and
//! the step, so a resumed run sees exactly the batches an unbroken one would.

use super::batch::{batch_indices, BatchOptions};

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

    /// Where zero-based optimiser step `step` falls: its epoch and its batch
    /// within the epoch. The one place an epoch is computed.
    pub fn position(&self, step: u64) -> (u64, u64) {
        let per_epoch = self.steps_per_epoch().max(1);
        (step / per_epoch, step % per_epoch)
    }

    /// Example indices of optimiser step `step` (zero-based, across epochs).
    pub fn batch(&self, step: u64) -> Vec<usize> {
        let (epoch, index) = self.position(step);
        self.epoch_batches(epoch).swap_remove(index as usize)
    }

    /// The batches of one epoch: seeded and length-grouped (see
    /// [`batch_indices`]); each epoch reshuffles with its own seed.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let options = BatchOptions {
            batch_size: self.batch_size,
            seed: self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..BatchOptions::default()
        };
        batch_indices(&self.lengths, &options)
    }
}
