//! The optimal and sub-optimal trajectories: the "texts" the methods learn from.

use std::collections::VecDeque;

use crate::env::{FrozenLake, N_ACTIONS};
use crate::error::LakeError;
use crate::map::Tile;

/// `states[t]` then `actions[t]` for `t < len`; the last action enters the goal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trajectory {
    pub states: Vec<usize>,
    pub actions: Vec<usize>,
}

/// Greedy rollout of the optimal table under intended (non-slip) moves, taking the
/// lowest-numbered optimal action on ties, as `argmax` would.
pub fn optimal_trajectory(
    env: &FrozenLake,
    probs: &[[f64; N_ACTIONS]],
) -> Result<Trajectory, LakeError> {
    let (mut states, mut actions) = (vec![], vec![]);
    let mut s = env.map.start();
    while env.map.tiles[s] != Tile::Goal {
        let a = (0..N_ACTIONS)
            .find(|&a| probs[s][a] > 0.0)
            .ok_or(LakeError::NoRoute("optimal"))?;
        if states.contains(&s) || env.map.tiles[s] == Tile::Hole {
            return Err(LakeError::NoRoute("optimal"));
        }
        states.push(s);
        actions.push(a);
        s = env.map.intended_move(s, a);
    }
    Ok(Trajectory { states, actions })
}

/// Shortest move sequence from `from` to a goal over safe cells not in `avoid` (BFS).
fn shortest_path(env: &FrozenLake, from: usize, avoid: &[usize]) -> Option<Trajectory> {
    let n = env.map.n_states();
    let mut parent: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut seen = vec![false; n];
    seen[from] = true;
    let mut queue = VecDeque::from([from]);
    while let Some(s) = queue.pop_front() {
        if env.map.tiles[s] == Tile::Goal {
            let mut tr = Trajectory {
                states: vec![],
                actions: vec![],
            };
            let mut cur = s;
            while let Some((prev, a)) = parent[cur] {
                tr.states.insert(0, prev);
                tr.actions.insert(0, a);
                cur = prev;
            }
            return Some(tr);
        }
        for a in 0..N_ACTIONS {
            let next = env.map.intended_move(s, a);
            if !seen[next] && env.map.tiles[next] != Tile::Hole && !avoid.contains(&next) {
                seen[next] = true;
                parent[next] = Some((s, a));
                queue.push_back(next);
            }
        }
    }
    None
}

/// The sub-optimal route: follow the optimal trajectory to the first state where a
/// *non-optimal* action leads to a new safe cell from which the goal can still be
/// reached without going back, take it, then the shortest way on. On the route map
/// this is the right-hand branch.
pub fn suboptimal_trajectory(
    env: &FrozenLake,
    probs: &[[f64; N_ACTIONS]],
    optimal: &Trajectory,
) -> Result<Trajectory, LakeError> {
    for (i, &s) in optimal.states.iter().enumerate() {
        let prefix = &optimal.states[..=i];
        for a in (0..N_ACTIONS).filter(|&a| probs[s][a] == 0.0) {
            let next = env.map.intended_move(s, a);
            if env.map.tiles[next] == Tile::Hole || prefix.contains(&next) {
                continue;
            }
            if let Some(rest) = shortest_path(env, next, prefix) {
                let mut states = prefix.to_vec();
                let mut actions = optimal.actions[..i].to_vec();
                actions.push(a);
                states.extend(rest.states);
                actions.extend(rest.actions);
                return Ok(Trajectory { states, actions });
            }
        }
    }
    Err(LakeError::NoRoute("sub-optimal"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Map, MAP_ROUTE};
    use crate::value_iteration::{optimal_probs, q_values};

    #[test]
    fn route_map_has_a_7_move_optimal_and_a_9_move_suboptimal_route() {
        // S = 2. Left branch: 1, 0, 5, 10, 15, 20 → G = 21. Right branch: 3, 4, 9, 14,
        // 19, 24, 23, 22 → G. Independent of the code: read off MAP_ROUTE by hand.
        let env = FrozenLake::new(Map::parse(MAP_ROUTE).unwrap(), false, 100);
        let probs = optimal_probs(&env, &q_values(&env, 0.99, 1e-12));
        let opt = optimal_trajectory(&env, &probs).unwrap();
        assert_eq!(opt.states, vec![2, 1, 0, 5, 10, 15, 20]);
        assert_eq!(opt.actions, vec![0, 0, 1, 1, 1, 1, 2]);
        let sub = suboptimal_trajectory(&env, &probs, &opt).unwrap();
        assert_eq!(sub.states, vec![2, 3, 4, 9, 14, 19, 24, 23, 22]);
        assert_eq!(sub.actions, vec![2, 2, 1, 1, 1, 1, 0, 0, 0]);
        // Cell 3 is as far from G both ways (1 + 7 = 8 = 8): the only tie on the ring.
        assert_eq!(probs[3], [0.5, 0.0, 0.5, 0.0]);
    }
}
