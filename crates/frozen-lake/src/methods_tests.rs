use super::*;
use crate::ift_method::{ift_inputs, Lambda};
use crate::map::MAP_ROUTE;
use crate::policy::{encode, Encoding};
use rand::{rngs::StdRng, SeedableRng};

fn setup() -> (Map, Policy, PairData) {
    let map = Map::parse(MAP_ROUTE).unwrap();
    let policy = Policy::new(&map, Encoding::Rowcol, 8, &mut StdRng::seed_from_u64(3)).unwrap();
    let chosen = Trajectory {
        states: vec![2, 1, 0, 5, 10, 15, 20],
        actions: vec![0, 0, 1, 1, 1, 1, 2],
    };
    let rejected = Trajectory {
        states: vec![2, 3, 4, 9, 14, 19, 24, 23, 22],
        actions: vec![2, 2, 1, 1, 1, 1, 0, 0, 0],
    };
    let data = PairData::new(&map, chosen, rejected, &policy).unwrap();
    (map, policy, data)
}

#[test]
fn ift_with_lambda_and_gamma_zero_is_sft() -> Result<()> {
    // Spec §3's reduction: γ = 0, λ = 0 ⇒ IFT's loss is SFT's token-mean NLL.
    let (map, policy, data) = setup();
    let mut p = MethodParams::default();
    p.ift.lambda = Lambda::Static { value: 0.0 };
    p.ift.weights.gamma = 0.0;
    let sft = loss(Method::Sft, &policy, &map, &data, &p, 0)?.to_scalar::<f32>()?;
    let ift = loss(Method::Ift, &policy, &map, &data, &p, 0)?.to_scalar::<f32>()?;
    assert!((sft - ift).abs() < 1e-6, "{sft} vs {ift}");
    // With the defaults the inputs are mixed, so the loss differs.
    let ift = loss(
        Method::Ift,
        &policy,
        &map,
        &data,
        &MethodParams::default(),
        0,
    )?
    .to_scalar::<f32>()?;
    assert!((sft - ift).abs() > 1e-6);
    Ok(())
}

#[test]
fn ift_inputs_mix_the_truth_with_the_greedy_next_cell() -> Result<()> {
    // λ = 1 replaces each state after the first with where the greedy action from the
    // previous true state leads; row t must be E[move(s_{t−1}, argmax π(·|s_{t−1}))].
    let (map, policy, data) = setup();
    let x = ift_inputs(&policy, &map, &data.chosen, 1.0)?.to_vec2::<f32>()?;
    let table = policy.probs_table(&map)?;
    let greedy = |s: usize| (0..4).fold(0, |b, a| if table[s][a] > table[s][b] { a } else { b });
    assert_eq!(
        x[0],
        encode(&map, Encoding::Rowcol, &[2])?.to_vec2::<f32>()?[0]
    );
    for (t, row) in x.iter().enumerate().skip(1) {
        let want = map.intended_move(data.chosen.states[t - 1], greedy(data.chosen.states[t - 1]));
        assert_eq!(
            *row,
            encode(&map, Encoding::Rowcol, &[want])?.to_vec2::<f32>()?[0],
            "step {t}"
        );
    }
    Ok(())
}

#[test]
fn dpo_starts_at_ln2_because_the_reference_is_the_initial_policy() -> Result<()> {
    // π = π_ref ⇒ h = 0 ⇒ −log σ(0) = ln 2.
    let (map, policy, data) = setup();
    let l = loss(
        Method::Dpo,
        &policy,
        &map,
        &data,
        &MethodParams::default(),
        0,
    )?
    .to_scalar::<f32>()?;
    assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
    Ok(())
}
