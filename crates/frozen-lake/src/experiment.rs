//! The whole experiment: optimal table, the route pair, every method over several
//! seeds, and the summary table.

use std::fmt::Write;

use rand::{rngs::StdRng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::env::{FrozenLake, N_ACTIONS};
use crate::error::LakeError;
use crate::eval::{mse, rollouts};
use crate::map::Map;
use crate::methods::{Method, MethodParams};
use crate::train::{train, TrainConfig};
use crate::trajectory::{optimal_trajectory, suboptimal_trajectory, Trajectory};
use crate::value_iteration::{optimal_probs, q_values};

/// Everything that defines a run; saved beside the results.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Training seeds `0..seeds`; each seeds the network initialisation (shared by all
    /// methods) and, offset by 10 000, the evaluation episodes.
    pub seeds: u64,
    /// Discount for value iteration; below 1 so that shorter routes are strictly better.
    pub value_gamma: f64,
    /// Sampled evaluation episodes per policy.
    pub episodes: usize,
    /// Truncation limit per episode (Gymnasium's 4×4 default, 100).
    pub max_episode_steps: usize,
    pub train: TrainConfig,
    pub methods: MethodParams,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            seeds: 5,
            value_gamma: 0.99,
            episodes: 200,
            max_episode_steps: 100,
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
        let n = xs.len() as f64;
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

/// One method's scores over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: Method,
    pub mse_all: Stat,
    pub mse_route: Stat,
    pub success: Stat,
    pub coverage: Stat,
    /// MSE over all non-terminal states for each seed, in seed order (for paired comparisons:
    /// every method starts from the same network at a given seed).
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
    pub chosen: Trajectory,
    pub rejected: Trajectory,
    pub methods: Vec<MethodResult>,
}

pub fn run(map: &Map, cfg: &ExperimentConfig) -> Result<ExperimentResult, LakeError> {
    // The experiment's "texts" need deterministic moves; slippery ice is tested but unused here.
    let mut env = FrozenLake::new(map.clone(), false, cfg.max_episode_steps);
    let optimal = optimal_probs(&env, &q_values(&env, cfg.value_gamma, 1e-12));
    let chosen = optimal_trajectory(&env, &optimal)?;
    let rejected = suboptimal_trajectory(&env, &optimal, &chosen)?;
    let (all, route) = (map.non_terminal_states(), chosen.states.clone());
    let mut methods = vec![];
    for method in Method::ALL {
        let (mut scores, mut curves) = (vec![[0.0; 4]; 0], vec![]);
        let mut mean_probs = vec![[0.0; N_ACTIONS]; map.n_states()];
        let mut visits = vec![0; map.n_states()];
        for seed in 0..cfg.seeds {
            let run = train(
                method,
                map,
                (&chosen, &rejected),
                &optimal,
                &cfg.methods,
                &cfg.train,
                seed,
            )?;
            let r = rollouts(
                &mut env,
                &run.probs,
                cfg.episodes,
                &mut StdRng::seed_from_u64(10_000 + seed),
            );
            scores.push([
                mse(&run.probs, &optimal, &all),
                mse(&run.probs, &optimal, &route),
                r.success_rate,
                r.coverage,
            ]);
            for (s, p) in run.probs.iter().enumerate() {
                (0..N_ACTIONS).for_each(|a| mean_probs[s][a] += p[a] / cfg.seeds as f64);
                visits[s] += r.visits[s];
            }
            curves.push(run.curve);
        }
        let col = |i: usize| Stat::of(&scores.iter().map(|s| s[i]).collect::<Vec<_>>());
        let curve = (0..curves[0].len())
            .map(|k| {
                let st = Stat::of(&curves.iter().map(|c| c[k].1).collect::<Vec<_>>());
                (curves[0][k].0, st.mean, st.std)
            })
            .collect();
        let mse_all_per_seed = scores.iter().map(|s| s[0]).collect();
        methods.push(MethodResult {
            method,
            mse_all_per_seed,
            mse_all: col(0),
            mse_route: col(1),
            success: col(2),
            coverage: col(3),
            mean_probs,
            visits,
            curve,
        });
    }
    Ok(ExperimentResult {
        config: *cfg,
        map: map.clone(),
        optimal,
        chosen,
        rejected,
        methods,
    })
}

/// The results as a Markdown table, methods in a fixed order, `mean ± std` over seeds.
pub fn format_table(result: &ExperimentResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| method | MSE (all states) | MSE (optimal route) | success rate | coverage |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for m in &result.methods {
        let f = |s: Stat, d: usize| format!("{:.d$} ± {:.d$}", s.mean, s.std);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            m.method.name(),
            f(m.mse_all, 4),
            f(m.mse_route, 4),
            f(m.success, 3),
            f(m.coverage, 3)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::MAP_ROUTE;

    #[test]
    fn the_experiment_is_deterministic_for_a_given_seed() {
        let map = Map::parse(MAP_ROUTE).unwrap();
        let cfg = ExperimentConfig {
            seeds: 2,
            episodes: 20,
            train: TrainConfig {
                steps: 30,
                ..TrainConfig::default()
            },
            ..ExperimentConfig::default()
        };
        let (a, b) = (run(&map, &cfg).unwrap(), run(&map, &cfg).unwrap());
        assert_eq!(format_table(&a), format_table(&b));
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        // And the seeds matter: a different seed count changes the table.
        let c = run(&map, &ExperimentConfig { seeds: 3, ..cfg }).unwrap();
        assert_ne!(format_table(&a), format_table(&c));
    }
}
