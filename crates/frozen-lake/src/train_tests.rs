use super::*;
use crate::map::{Map, MAP_ROUTE};
use crate::methods::MethodParams;
use crate::value_iteration::{optimal_probs, q_values};
use candle_core::{Device, Tensor};

/// The right-hand branch of the route map, read off the map by hand.
const RIGHT: [(usize, usize); 9] = [
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

fn right_route() -> Trajectory {
    Trajectory {
        states: RIGHT.map(|r| r.0).to_vec(),
        actions: RIGHT.map(|r| r.1).to_vec(),
    }
}

/// A network that puts all its mass (up to e⁻¹⁰⁰) on the right branch: one-hot states,
/// hidden unit `a` on where the route takes action `a`, a steep output layer.
fn right_route_policy(map: &Map) -> Policy {
    let mut w1 = vec![0f32; map.n_states() * 4];
    for (s, a) in RIGHT {
        w1[s * 4 + a] = 10.0;
    }
    let var = |v: Vec<f32>, shape: (usize, usize)| {
        candle_core::Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    };
    let eye: Vec<f32> = (0..16)
        .map(|i| if i % 5 == 0 { 100.0 } else { 0.0 })
        .collect();
    Policy {
        w1: var(w1, (map.n_states(), 4)),
        b1: var(vec![0.0; 4], (1, 4)),
        w2: var(eye, (4, 4)),
        b2: var(vec![0.0; 4], (1, 4)),
        encoding: Encoding::Onehot,
    }
}

#[test]
fn a_policy_with_all_mass_on_one_route_gets_that_route_as_its_negative() {
    let map = Map::parse(MAP_ROUTE).unwrap();
    let policy = right_route_policy(&map);
    let mut env = FrozenLake::new(map, false, 100);
    let mut rng = StdRng::seed_from_u64(0);
    for _ in 0..10 {
        assert_eq!(
            on_policy_negative(&policy, &mut env, &mut rng).unwrap(),
            right_route()
        );
    }
}

#[test]
fn on_policy_training_uses_the_policys_sample_not_the_given_rejected() {
    // From the right-route policy, an on-policy DPO run must equal a fixed-negative run
    // whose negative is the right route, and differ from the run on the given (wrong) one.
    let map = Map::parse(MAP_ROUTE).unwrap();
    let env = FrozenLake::new(map.clone(), false, 100);
    let optimal = optimal_probs(&env, &q_values(&env, 0.99, 1e-12));
    let start = right_route_policy(&map);
    let chosen = Trajectory {
        states: vec![2, 1, 0, 5, 10, 15, 20],
        actions: vec![0, 0, 1, 1, 1, 1, 2],
    };
    let into_hole = Trajectory {
        states: vec![2],
        actions: vec![1],
    };
    let arm = Arm {
        label: "DPO",
        method: Method::Dpo,
        role: None,
        params: MethodParams::default(),
        after_sft: false,
    };
    let cfg = TrainConfig {
        steps: 3,
        encoding: Encoding::Onehot,
        ..TrainConfig::default()
    };
    let run = |rejected: &Trajectory, resample_every| {
        let inputs = SeedInputs {
            env: &env,
            chosen: &chosen,
            rejected,
            start: &start,
            optimal: &optimal,
            resample_every,
            seed: 0,
        };
        train(&arm, &inputs, &cfg).unwrap().probs
    };
    let on_policy = run(&into_hole, Some(10));
    assert_eq!(on_policy, run(&right_route(), None));
    assert_ne!(on_policy, run(&into_hole, None));
}
