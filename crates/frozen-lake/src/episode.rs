//! Episodes that *sample* actions from a probability table: the evaluation rollouts,
//! the on-policy negatives (reading 3) and the slippery-ice training pairs (reading 4)
//! all draw their episodes here, so they share one meaning of "a sample from π".

use rand::{rngs::StdRng, Rng};

use crate::env::{FrozenLake, N_ACTIONS};
use crate::trajectory::Trajectory;

/// One sampled episode: what was read and done, where it ended, whether it paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    /// `states[t]`, then `actions[t]`; the last action ends the episode.
    pub trajectory: Trajectory,
    /// The observation after the last action (a hole, the goal, or wherever truncation hit).
    pub end: usize,
    /// Whether the episode reached the goal.
    pub success: bool,
}

/// Draws an action from `p` with one uniform number (inverse CDF). Rounding that leaves
/// the sum a hair under 1 falls to the last action rather than to none.
pub fn sample_action(p: &[f64; N_ACTIONS], rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    (0..N_ACTIONS)
        .find(|&a| {
            acc += p[a];
            u < acc
        })
        .unwrap_or(N_ACTIONS - 1)
}

/// Plays one episode from `S`, each action drawn from `probs[state]` and each slip (if the
/// ice is slippery) from the same `rng`, until a hole, the goal or truncation.
pub fn sample_episode(
    env: &mut FrozenLake,
    probs: &[[f64; N_ACTIONS]],
    rng: &mut StdRng,
) -> Episode {
    let (mut states, mut actions) = (vec![], vec![]);
    let mut s = env.reset();
    loop {
        let a = sample_action(&probs[s], rng);
        let r = env.step(a, rng);
        states.push(s);
        actions.push(a);
        s = r.observation;
        if r.terminated || r.truncated {
            return Episode {
                trajectory: Trajectory { states, actions },
                end: s,
                success: r.reward > 0.0,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Map, MAP_ROUTE};
    use rand::SeedableRng;

    #[test]
    fn a_table_with_all_mass_on_one_route_samples_that_route() {
        // The right-hand branch of the route map, read off the map by hand.
        let mut env = FrozenLake::new(Map::parse(MAP_ROUTE).unwrap(), false, 100);
        let route = [
            (2, 2),
            (3, 2),
            (4, 1),
            (9, 1),
            (14, 1),
            (19, 1),
            (24, 0),
            (23, 0),
            (22, 0),
        ];
        let mut probs = vec![[0.25; 4]; 25];
        for (s, a) in route {
            probs[s] = [0.0; 4];
            probs[s][a] = 1.0;
        }
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..20 {
            let e = sample_episode(&mut env, &probs, &mut rng);
            assert_eq!(e.trajectory.states, route.map(|r| r.0).to_vec());
            assert_eq!(e.trajectory.actions, route.map(|r| r.1).to_vec());
            assert_eq!((e.end, e.success), (21, true));
        }
    }

    #[test]
    fn sampled_actions_follow_the_table() {
        // 3/4 on down, 1/4 on right: 20 000 draws put the share within ±0.02 (> 6 σ).
        let mut rng = StdRng::seed_from_u64(1);
        let n = 20_000;
        let downs = (0..n)
            .filter(|_| sample_action(&[0.0, 0.75, 0.25, 0.0], &mut rng) == 1)
            .count();
        assert!((downs as f64 / n as f64 - 0.75).abs() < 0.02, "{downs}");
        // A table that sums to slightly under 1 never yields an action outside 0..4.
        assert!((0..1000).all(|_| sample_action(&[0.0, 0.0, 0.0, 0.999_999], &mut rng) == 3));
    }
}
