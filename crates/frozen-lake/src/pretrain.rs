//! Reading 1's starting point: a policy *pre-trained* towards a corrupted optimal table,
//! the analogue of the language-model base that every fine-tuning method starts from.
//! The paper: "The optimal parameterized policy is trained using the previously obtained
//! optimal state-action transition matrix, and various fine-tuning methods from LMs are
//! compared."

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{rngs::StdRng, Rng};

use crate::env::N_ACTIONS;
use crate::map::Map;
use crate::policy::Policy;

/// `(1 − ε)·π*(·|s) + ε·u_s` at every non-terminal state, with `u_s` drawn uniformly from
/// the probability simplex (normalised Exp(1) draws = Dirichlet(1, 1, 1, 1)) per state.
/// Random noise rather than the uniform distribution, so that the corruption also
/// changes which non-optimal action is preferred, as an imperfect base model would; at
/// ε ≤ 1/2 the optimal action keeps at least half the mass, so greedy play stays optimal.
/// Terminal states stay all zeros, as in the optimal table.
pub fn corrupted_table(
    optimal: &[[f64; N_ACTIONS]],
    states: &[usize],
    corruption: f64,
    rng: &mut StdRng,
) -> Vec<[f64; N_ACTIONS]> {
    let mut table = optimal.to_vec();
    for &s in states {
        let draws: [f64; N_ACTIONS] = std::array::from_fn(|_| -(1.0 - rng.random::<f64>()).ln());
        let total: f64 = draws.iter().sum();
        for a in 0..N_ACTIONS {
            table[s][a] = (1.0 - corruption) * optimal[s][a] + corruption * draws[a] / total;
        }
    }
    table
}

/// Fits `policy` to `target` on `states` by full-batch Adam on the cross-entropy
/// `−Σ_a target(a|s) log π(a|s)`, averaged over states: its minimum is `π = target`, so
/// with zero corruption the start is the optimal table itself.
pub fn pretrain(
    policy: &Policy,
    map: &Map,
    target: &[[f64; N_ACTIONS]],
    states: &[usize],
    steps: usize,
    lr: f64,
) -> Result<()> {
    let x = policy.encode(map, states)?;
    let rows: Vec<f32> = states
        .iter()
        .flat_map(|&s| target[s].map(|p| p as f32))
        .collect();
    let t = Tensor::from_vec(rows, (states.len(), N_ACTIONS), &Device::Cpu)?;
    let adam = ParamsAdamW {
        lr,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(policy.vars(), adam)?;
    for _ in 0..steps {
        let ce = (policy.log_probs(&x)? * &t)?.sum(1)?.neg()?.mean_all()?;
        opt.backward_step(&ce)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn corruption_mixes_in_a_random_distribution_per_state() {
        let optimal = vec![[1.0, 0.0, 0.0, 0.0], [0.0; 4], [0.0, 0.5, 0.5, 0.0]];
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(corrupted_table(&optimal, &[0, 2], 0.0, &mut rng), optimal);
        let t = corrupted_table(&optimal, &[0, 2], 0.5, &mut rng);
        for s in [0, 2] {
            assert!((t[s].iter().sum::<f64>() - 1.0).abs() < 1e-12, "state {s}");
            assert!(t[s].iter().all(|&p| p > 0.0), "noise reaches every action");
        }
        assert!(t[0][0] >= 0.5, "the optimal action keeps half the mass");
        assert_eq!(t[1], [0.0; 4], "terminal states untouched");
        let noise = |s: usize| {
            (0..4)
                .map(|a| t[s][a] - 0.5 * optimal[s][a])
                .collect::<Vec<_>>()
        };
        assert_ne!(noise(0), noise(2), "each state draws its own noise");
    }
}
