//! One training run: a method, a seed, a fixed number of full-batch Adam steps.

use candle_core::Result;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::env::N_ACTIONS;
use crate::eval::mse;
use crate::map::Map;
use crate::methods::{loss, Method, MethodParams, PairData};
use crate::policy::{Encoding, Policy};
use crate::trajectory::Trajectory;

/// Optimisation settings, the same for every method (none is tuned per method).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// The network's view of a state; row/column one-hot by default.
    pub encoding: Encoding,
    /// Hidden width of the two-layer network.
    pub hidden: usize,
    /// Optimiser steps; each step sees the whole (one-pair) data set.
    pub steps: usize,
    /// Adam learning rate (no weight decay): large enough that SFT fits the route in `steps`.
    pub lr: f64,
    /// Record the MSE curve every this many steps.
    pub eval_every: usize,
    /// SFT steps on the chosen trajectory before DPO; the result is both DPO's start and
    /// its `π_ref`, as in the language-model recipe. 0 (default): DPO starts from, and
    /// refers to, the untrained network like every other method.
    pub dpo_sft_warmup: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            encoding: Encoding::Rowcol,
            hidden: 32,
            steps: 200,
            lr: 1e-2,
            eval_every: 5,
            dpo_sft_warmup: 0,
        }
    }
}

/// The trained policy's table and its `(step, MSE over non-terminal states)` curve.
pub struct TrainRun {
    pub probs: Vec<[f64; N_ACTIONS]>,
    pub curve: Vec<(usize, f64)>,
}

/// Trains `method` from the network that `seed` initialises (the same start for every
/// method at a given seed) and records its distance to `optimal` along the way.
#[allow(clippy::too_many_arguments)]
pub fn train(
    method: Method,
    map: &Map,
    pair: (&Trajectory, &Trajectory),
    optimal: &[[f64; N_ACTIONS]],
    params: &MethodParams,
    cfg: &TrainConfig,
    seed: u64,
) -> Result<TrainRun> {
    let policy = Policy::new(
        map,
        cfg.encoding,
        cfg.hidden,
        &mut StdRng::seed_from_u64(seed),
    )?;
    let adam = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    if method == Method::Dpo && cfg.dpo_sft_warmup > 0 {
        let data = PairData::new(map, pair.0.clone(), pair.1.clone(), &policy)?;
        let mut opt = AdamW::new(policy.vars(), adam.clone())?;
        for _ in 0..cfg.dpo_sft_warmup {
            opt.backward_step(&loss(Method::Sft, &policy, map, &data, params)?)?;
        }
    }
    // The reference log-probs are taken here, from the network DPO starts from.
    let data = PairData::new(map, pair.0.clone(), pair.1.clone(), &policy)?;
    let mut opt = AdamW::new(policy.vars(), adam)?;
    let states = map.non_terminal_states();
    let mut curve = vec![(0, mse(&policy.probs_table(map)?, optimal, &states))];
    for step in 1..=cfg.steps {
        opt.backward_step(&loss(method, &policy, map, &data, params)?)?;
        if step % cfg.eval_every == 0 || step == cfg.steps {
            curve.push((step, mse(&policy.probs_table(map)?, optimal, &states)));
        }
    }
    Ok(TrainRun {
        probs: policy.probs_table(map)?,
        curve,
    })
}
