//! The training pair of one seed: the "texts" every method reads.

use rand::{rngs::StdRng, SeedableRng};

use crate::env::{FrozenLake, N_ACTIONS};
use crate::episode::sample_episode;
use crate::error::LakeError;
use crate::trajectory::{optimal_trajectory, suboptimal_trajectory, Trajectory};
use crate::value_iteration::{optimal_probs, q_values};

/// Episodes tried before a slippery map is declared unable to give the pair.
const MAX_TRIES: usize = 1000;

/// `(chosen, rejected)` for `seed`.
///
/// Deterministic ice: the optimal and sub-optimal routes, the same for every seed.
///
/// Slippery ice (reading 4) has no route: a trajectory is one episode, and the same
/// actions can end anywhere. Chosen = the first episode of the optimal table (`optimal`,
/// ties shared) that reaches the goal; rejected = the first episode of the *no-slip*
/// optimal table (the shortest-route policy, which ignores slipping) that ends in a hole
/// or is truncated. Chosen is better by outcome and by policy; both start at `S`, as a
/// pair of answers shares its prompt. Drawn from `StdRng(30 000 + seed)`, so each seed
/// has its own pair and every method of that seed the same one.
pub fn training_pair(
    env: &FrozenLake,
    optimal: &[[f64; N_ACTIONS]],
    value_gamma: f64,
    seed: u64,
) -> Result<(Trajectory, Trajectory), LakeError> {
    if !env.is_slippery {
        let chosen = optimal_trajectory(env, optimal)?;
        let rejected = suboptimal_trajectory(env, optimal, &chosen)?;
        return Ok((chosen, rejected));
    }
    let no_slip = FrozenLake::new(env.map.clone(), false, env.max_episode_steps);
    let naive = optimal_probs(&no_slip, &q_values(&no_slip, value_gamma, 1e-12));
    let mut env = env.clone();
    let mut rng = StdRng::seed_from_u64(30_000 + seed);
    let mut first = |probs: &[[f64; N_ACTIONS]], success: bool, what| {
        (0..MAX_TRIES)
            .map(|_| sample_episode(&mut env, probs, &mut rng))
            .find(|e| e.success == success)
            .map(|e| e.trajectory)
            .ok_or(LakeError::NoEpisode {
                what,
                tries: MAX_TRIES,
            })
    };
    let chosen = first(optimal, true, "successful episode of the optimal policy")?;
    let rejected = first(
        &naive,
        false,
        "failed episode of the no-slip optimal policy",
    )?;
    Ok((chosen, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Map, MAP_ROUTE};

    fn setup(slippery: bool) -> (FrozenLake, Vec<[f64; N_ACTIONS]>) {
        let env = FrozenLake::new(Map::parse(MAP_ROUTE).unwrap(), slippery, 100);
        let probs = optimal_probs(&env, &q_values(&env, 0.99, 1e-12));
        (env, probs)
    }

    #[test]
    fn slippery_pairs_are_a_success_and_a_failure_of_their_policies() {
        let (env, optimal) = setup(true);
        let (chosen, rejected) = training_pair(&env, &optimal, 0.99, 0).unwrap();
        // Every chosen action is optimal on slippery ice; the rejected episode starts with
        // the shortest route's first move (left, which can slip down into the hole at 7).
        assert!(chosen
            .states
            .iter()
            .zip(&chosen.actions)
            .all(|(&s, &a)| optimal[s][a] > 0.0));
        assert_eq!(
            (chosen.states[0], rejected.states[0], rejected.actions[0]),
            (2, 2, 0)
        );
        assert_eq!(
            training_pair(&env, &optimal, 0.99, 0).unwrap(),
            (chosen.clone(), rejected)
        );
        assert_ne!(
            training_pair(&env, &optimal, 0.99, 1).unwrap().0,
            chosen,
            "seeds differ"
        );
    }

    #[test]
    fn deterministic_pairs_are_the_two_routes_for_every_seed() {
        let (env, optimal) = setup(false);
        let (chosen, rejected) = training_pair(&env, &optimal, 0.99, 7).unwrap();
        assert_eq!(chosen.states, vec![2, 1, 0, 5, 10, 15, 20]);
        assert_eq!(rejected.states, vec![2, 3, 4, 9, 14, 19, 24, 23, 22]);
    }

    #[test]
    fn a_slippery_map_without_holes_has_no_failure_to_reject() {
        let env = FrozenLake::new(Map::parse("SF\nFG").unwrap(), true, 100);
        let optimal = optimal_probs(&env, &q_values(&env, 0.99, 1e-12));
        let err = training_pair(&env, &optimal, 0.99, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("failed episode"), "{err}");
    }
}
