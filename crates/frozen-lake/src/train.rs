//! One training run: one row of a reading, one seed, a fixed number of full-batch Adam
//! steps from that seed's starting network.

use candle_core::Result;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::env::{FrozenLake, N_ACTIONS};
use crate::episode::sample_episode;
use crate::eval::mse;
use crate::methods::{loss, Method, PairData};
use crate::policy::{Encoding, Policy};
use crate::setup::Arm;
use crate::trajectory::Trajectory;

/// Optimisation settings, the same for every method (none is tuned per method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The network's view of a state; row/column one-hot by default.
    pub encoding: Encoding,
    /// Hidden width of the two-layer network.
    pub hidden: usize,
    /// Optimiser steps per stage; each step sees the whole (one-pair) data set. SFT→DPO
    /// rows run this many SFT steps, then this many DPO steps.
    pub steps: usize,
    /// Adam learning rate (no weight decay): large enough that SFT fits the route in `steps`.
    pub lr: f64,
    /// Record the MSE curve every this many steps.
    pub eval_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            encoding: Encoding::Rowcol,
            hidden: 32,
            steps: 200,
            lr: 1e-2,
            eval_every: 5,
        }
    }
}

/// What one seed gives every row of a reading.
pub struct SeedInputs<'a> {
    pub env: &'a FrozenLake,
    pub chosen: &'a Trajectory,
    pub rejected: &'a Trajectory,
    /// Where every row starts: the seed's untrained or pre-trained network (never trained
    /// itself; each row fine-tunes a snapshot).
    pub start: &'a Policy,
    pub optimal: &'a [[f64; N_ACTIONS]],
    /// Reading 3: replace the rejected trajectory by a sample from the current policy every
    /// this many steps (DPO and ORPO only).
    pub resample_every: Option<usize>,
    pub seed: u64,
}

/// The trained policy's table and its `(step, MSE over non-terminal states)` curve; step
/// 0 is where this row's fine-tuning starts.
pub struct TrainRun {
    pub probs: Vec<[f64; N_ACTIONS]>,
    pub curve: Vec<(usize, f64)>,
}

/// A rejected trajectory drawn from `policy` itself: one episode sampling its actions.
pub fn on_policy_negative(
    policy: &Policy,
    env: &mut FrozenLake,
    rng: &mut StdRng,
) -> Result<Trajectory> {
    let probs = policy.probs_table(&env.map)?;
    Ok(sample_episode(env, &probs, rng).trajectory)
}

pub fn train(arm: &Arm, inputs: &SeedInputs, cfg: &TrainConfig) -> Result<TrainRun> {
    let map = &inputs.env.map;
    let policy = inputs.start.snapshot()?;
    let adam = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let pair = |rejected: &Trajectory, reference: &Policy| {
        PairData::new(map, inputs.chosen.clone(), rejected.clone(), reference)
    };
    if arm.after_sft {
        let data = pair(inputs.rejected, &policy)?;
        let mut opt = AdamW::new(policy.vars(), adam.clone())?;
        for step in 0..cfg.steps {
            opt.backward_step(&loss(Method::Sft, &policy, map, &data, &arm.params, step)?)?;
        }
    }
    // DPO's π_ref is where this row's fine-tuning starts, frozen.
    let reference = policy.snapshot()?;
    let mut data = pair(inputs.rejected, &reference)?;
    let resample = inputs.resample_every.filter(|_| arm.method.uses_rejected());
    let (mut env, mut rng) = (
        inputs.env.clone(),
        StdRng::seed_from_u64(20_000 + inputs.seed),
    );
    let mut opt = AdamW::new(policy.vars(), adam)?;
    let states = map.non_terminal_states();
    let mut curve = vec![(0, mse(&policy.probs_table(map)?, inputs.optimal, &states))];
    for step in 0..cfg.steps {
        if resample.is_some_and(|k| step % k.max(1) == 0) {
            data = pair(
                &on_policy_negative(&policy, &mut env, &mut rng)?,
                &reference,
            )?;
        }
        opt.backward_step(&loss(arm.method, &policy, map, &data, &arm.params, step)?)?;
        let done = step + 1;
        if done % cfg.eval_every.max(1) == 0 || done == cfg.steps {
            curve.push((
                done,
                mse(&policy.probs_table(map)?, inputs.optimal, &states),
            ));
        }
    }
    Ok(TrainRun {
        probs: policy.probs_table(map)?,
        curve,
    })
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
