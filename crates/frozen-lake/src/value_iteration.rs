//! The exactly known optimal policy: value iteration on the model `env.transitions`.

use crate::env::{FrozenLake, N_ACTIONS};

/// `Q*(s, a)` per state; terminal states are all zeros.
pub type QTable = Vec<[f64; N_ACTIONS]>;

/// Iterates `Q(s,a) = Σ p (r + γ V(s') [s' not terminal])`, `V = max_a Q`, until
/// no value moves by more than `tol`.
pub fn q_values(env: &FrozenLake, gamma: f64, tol: f64) -> QTable {
    let n = env.map.n_states();
    let mut v = vec![0.0; n];
    let mut q = vec![[0.0; N_ACTIONS]; n];
    loop {
        let mut delta: f64 = 0.0;
        for s in 0..n {
            if env.map.tiles[s].is_terminal() {
                continue;
            }
            for (a, q_sa) in q[s].iter_mut().enumerate() {
                *q_sa = env
                    .transitions(s, a)
                    .iter()
                    .map(|&(p, next, r, done)| p * (r + if done { 0.0 } else { gamma * v[next] }))
                    .sum();
            }
            let best = q[s].iter().cloned().fold(f64::MIN, f64::max);
            delta = delta.max((best - v[s]).abs());
            v[s] = best;
        }
        if delta < tol {
            return q;
        }
    }
}

/// The optimal state-action probability table: uniform over the actions whose
/// `Q` is within `1e-9` of the best (ties are all optimal), zeros at terminal states.
pub fn optimal_probs(env: &FrozenLake, q: &QTable) -> Vec<[f64; N_ACTIONS]> {
    q.iter()
        .enumerate()
        .map(|(s, row)| {
            let mut p = [0.0; N_ACTIONS];
            if env.map.tiles[s].is_terminal() {
                return p;
            }
            let best = row.iter().cloned().fold(f64::MIN, f64::max);
            let ties: Vec<usize> = (0..N_ACTIONS).filter(|&a| row[a] >= best - 1e-9).collect();
            for &a in &ties {
                p[a] = 1.0 / ties.len() as f64;
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Map, MAP_4X4};

    #[test]
    fn deterministic_4x4_values_are_gamma_to_the_distance() {
        // Reward 1 on arriving at G, so V(s) = γ^(d−1) with d the shortest path
        // length: d(14) = 1, d(0) = 6 ⇒ V(0) = 0.9⁵ = 0.59049; d(4) = 5, d(6) = 3.
        let env = FrozenLake::new(Map::parse(MAP_4X4).unwrap(), false, 100);
        let q = q_values(&env, 0.9, 1e-12);
        let v = |s: usize| q[s].iter().cloned().fold(f64::MIN, f64::max);
        for (s, d) in [(14, 1), (0, 6), (4, 5), (6, 3), (13, 2)] {
            assert!((v(s) - 0.9f64.powi(d - 1)).abs() < 1e-9, "state {s}");
        }
        // From 0 both down and right are shortest; from 14 only right reaches G.
        let p = optimal_probs(&env, &q);
        assert_eq!(p[0], [0.0, 0.5, 0.5, 0.0]);
        assert_eq!(p[14], [0.0, 0.0, 1.0, 0.0]);
        assert_eq!(p[5], [0.0; 4]);
    }

    #[test]
    fn slippery_4x4_undiscounted_values_match_the_known_solution() {
        // The well-known exact solution of slippery FrozenLake-v1 4×4 with γ = 1:
        // V = 14/17 on 0–4, 8, 9; 9/17 at 6; 13/17 at 10; 15/17 at 13; 16/17 at 14.
        let env = FrozenLake::new(Map::parse(MAP_4X4).unwrap(), true, 100);
        let q = q_values(&env, 1.0, 1e-12);
        let v = |s: usize| q[s].iter().cloned().fold(f64::MIN, f64::max);
        let known = [
            (0, 14),
            (1, 14),
            (2, 14),
            (3, 14),
            (4, 14),
            (6, 9),
            (8, 14),
            (9, 14),
            (10, 13),
            (13, 15),
            (14, 16),
        ];
        for (s, num) in known {
            assert!(
                (v(s) - num as f64 / 17.0).abs() < 1e-6,
                "state {s}: {}",
                v(s)
            );
        }
        // With γ = 0.99 the tie at γ = 1 breaks into the widely published policy
        // (LEFT, UP, UP, UP / LEFT, -, LEFT, - / UP, DOWN, LEFT, - / -, RIGHT, DOWN, -):
        // at each cell it picks the action whose slips can never enter a hole. Those
        // listings come from `argmax`, the first best action: at 6, LEFT and RIGHT tie
        // exactly by the map's mirror symmetry around column 2.
        let p = optimal_probs(&env, &q_values(&env, 0.99, 1e-12));
        let want = [0, 3, 3, 3, 0, 9, 0, 9, 3, 1, 0, 9, 9, 2, 1, 9];
        for (s, &a) in want.iter().enumerate().filter(|(_, &a)| a != 9) {
            assert_eq!(
                (0..4).find(|&b| p[s][b] > 0.0),
                Some(a),
                "state {s}: {:?}",
                p[s]
            );
        }
        assert_eq!(p[6], [0.5, 0.0, 0.5, 0.0]);
    }
}
