//! The whole experiment under one reading: optimal table, each seed's pair and start,
//! every row of the reading over the seeds, and the per-row statistics.

use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::data::training_pair;
use crate::env::{FrozenLake, N_ACTIONS};
use crate::error::LakeError;
use crate::eval::{mse, rollouts};
use crate::map::Map;
use crate::methods::{Method, MethodParams};
use crate::policy::Policy;
use crate::pretrain::{corrupted_table, pretrain};
use crate::setup::{Arm, Setup};
use crate::train::{train, SeedInputs, TrainConfig};
use crate::trajectory::Trajectory;
use crate::value_iteration::{optimal_probs, q_values};

/// Everything that defines a run; saved beside the results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Training seeds `0..seeds`; each seeds the network initialisation (shared by all
    /// rows), offset by 10 000 the evaluation episodes, by 20 000 the on-policy
    /// negatives, by 30 000 the slippery pair and by 40 000 the pre-training noise.
    pub seeds: u64,
    /// Discount for value iteration; below 1 so that shorter routes are strictly better.
    pub value_gamma: f64,
    /// Sampled evaluation episodes per policy.
    pub episodes: usize,
    /// Truncation limit per episode (Gymnasium's 4×4 default, 100).
    pub max_episode_steps: usize,
    /// The reading of the paper's set-up.
    pub setup: Setup,
    pub train: TrainConfig,
    pub methods: MethodParams,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            seeds: 20,
            value_gamma: 0.99,
            episodes: 200,
            max_episode_steps: 100,
            setup: Setup::Baseline,
            train: TrainConfig::default(),
            methods: MethodParams::default(),
        }
    }
}

/// Mean and sample standard deviation over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len().max(1) as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
        }
    }
}

/// One row's scores over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    pub arm: Arm,
    pub mse_all: Stat,
    /// Over the states of each seed's chosen trajectory (the optimal route on plain ice).
    pub mse_route: Stat,
    pub success: Stat,
    pub coverage: Stat,
    /// MSE over all non-terminal states per seed, in seed order: every row starts from
    /// the same network at a given seed, so rows compare seed by seed.
    pub mse_all_per_seed: Vec<f64>,
    /// `π(·|s)` averaged over seeds (what the arrow picture shows).
    pub mean_probs: Vec<[f64; N_ACTIONS]>,
    /// State visits summed over seeds' evaluation episodes.
    pub visits: Vec<usize>,
    /// `(step, mean, std)` of the MSE over non-terminal states.
    pub curve: Vec<(usize, f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResult {
    pub config: ExperimentConfig,
    pub map: Map,
    pub optimal: Vec<[f64; N_ACTIONS]>,
    /// Seed 0's pair (on slippery ice each seed samples its own).
    pub chosen: Trajectory,
    /// `None` when the rejected trajectory is drawn on-policy during training.
    pub rejected: Option<Trajectory>,
    pub rows: Vec<RowResult>,
}

impl ExperimentResult {
    /// The row standing for `method` in the paper's ordering.
    pub fn role(&self, method: Method) -> &RowResult {
        let found = self.rows.iter().find(|r| r.arm.role == Some(method));
        found.expect("Setup::arms gives every method one row")
    }
}

/// Seed `seed`'s starting network: the initialisation, pre-trained in reading 1.
fn start(
    map: &Map,
    optimal: &[[f64; N_ACTIONS]],
    cfg: &ExperimentConfig,
    seed: u64,
) -> candle_core::Result<Policy> {
    let t = &cfg.train;
    let policy = Policy::new(map, t.encoding, t.hidden, &mut StdRng::seed_from_u64(seed))?;
    if let Setup::Pretrained {
        corruption,
        pretrain_steps,
    } = cfg.setup
    {
        let states = map.non_terminal_states();
        let target = corrupted_table(
            optimal,
            &states,
            corruption,
            &mut StdRng::seed_from_u64(40_000 + seed),
        );
        pretrain(&policy, map, &target, &states, pretrain_steps, t.lr)?;
    }
    Ok(policy)
}

/// One seed's numbers for one row.
#[derive(Clone)]
struct SeedScore {
    scores: [f64; 4],
    probs: Vec<[f64; N_ACTIONS]>,
    visits: Vec<usize>,
    curve: Vec<(usize, f64)>,
}

pub fn run(map: &Map, cfg: &ExperimentConfig) -> Result<ExperimentResult, LakeError> {
    let env = FrozenLake::new(map.clone(), cfg.setup.is_slippery(), cfg.max_episode_steps);
    let mut eval_env = env.clone();
    let optimal = optimal_probs(&env, &q_values(&env, cfg.value_gamma, 1e-12));
    let arms = cfg.setup.arms(&cfg.methods);
    let resample_every = match cfg.setup {
        Setup::OnPolicy { resample_every } => Some(resample_every),
        _ => None,
    };
    let all = map.non_terminal_states();
    let (mut per_arm, mut first_pair) = (vec![vec![]; arms.len()], None);
    for seed in 0..cfg.seeds.max(1) {
        let (chosen, rejected) = training_pair(&env, &optimal, cfg.value_gamma, seed)?;
        let start = start(map, &optimal, cfg, seed)?;
        let mut route = chosen.states.clone();
        route.sort_unstable();
        route.dedup();
        let inputs = SeedInputs {
            env: &env,
            chosen: &chosen,
            rejected: &rejected,
            start: &start,
            optimal: &optimal,
            resample_every,
            seed,
        };
        for (arm, out) in arms.iter().zip(per_arm.iter_mut()) {
            let run = train(arm, &inputs, &cfg.train)?;
            let r = rollouts(
                &mut eval_env,
                &run.probs,
                cfg.episodes,
                &mut StdRng::seed_from_u64(10_000 + seed),
            );
            let scores = [
                mse(&run.probs, &optimal, &all),
                mse(&run.probs, &optimal, &route),
                r.success_rate,
                r.coverage,
            ];
            out.push(SeedScore {
                scores,
                probs: run.probs,
                visits: r.visits,
                curve: run.curve,
            });
        }
        first_pair.get_or_insert((chosen, rejected));
    }
    let (chosen, rejected) = first_pair.expect("at least one seed ran");
    let rows = arms
        .into_iter()
        .zip(per_arm)
        .map(|(arm, seeds)| summarise(arm, &seeds))
        .collect();
    Ok(ExperimentResult {
        config: *cfg,
        map: map.clone(),
        optimal,
        chosen,
        rejected: resample_every.is_none().then_some(rejected),
        rows,
    })
}

fn summarise(arm: Arm, seeds: &[SeedScore]) -> RowResult {
    let col = |i: usize| seeds.iter().map(|s| s.scores[i]).collect::<Vec<_>>();
    let n_states = seeds[0].probs.len();
    let mut mean_probs = vec![[0.0; N_ACTIONS]; n_states];
    let mut visits = vec![0; n_states];
    for s in seeds {
        for (st, p) in s.probs.iter().enumerate() {
            (0..N_ACTIONS).for_each(|a| mean_probs[st][a] += p[a] / seeds.len() as f64);
            visits[st] += s.visits[st];
        }
    }
    let curve = (0..seeds[0].curve.len())
        .map(|k| {
            let st = Stat::of(&seeds.iter().map(|s| s.curve[k].1).collect::<Vec<_>>());
            (seeds[0].curve[k].0, st.mean, st.std)
        })
        .collect();
    RowResult {
        arm,
        mse_all: Stat::of(&col(0)),
        mse_route: Stat::of(&col(1)),
        success: Stat::of(&col(2)),
        coverage: Stat::of(&col(3)),
        mse_all_per_seed: col(0),
        mean_probs,
        visits,
        curve,
    }
}

#[cfg(test)]
#[path = "experiment_tests.rs"]
mod tests;
