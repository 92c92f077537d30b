use super::*;
use crate::ift_method::{ift_inputs, IftParams, Lambda};
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

/// IFT's loss with one option changed from the defaults.
fn ift_with(change: impl Fn(&mut IftParams), step: usize) -> Result<(f32, Vec<f32>)> {
    let (map, policy, data) = setup();
    let mut p = MethodParams::default();
    change(&mut p.ift);
    let l = loss(Method::Ift, &policy, &map, &data, &p, step)?;
    let grads = l.backward()?;
    let g = grads.get(policy.b2.as_tensor()).unwrap().to_vec1::<f32>()?;
    Ok((l.to_scalar::<f32>()?, g))
}

#[test]
fn paper_eq21_weighs_step_t_by_t_plus_one() -> Result<()> {
    // With λ = 0 the inputs are the true states, so ℓ_t is SFT's per-step NLL and the
    // printed Eq. 21 gives L = Σ_t (t + 1) ℓ_t / T.
    let (map, policy, data) = setup();
    let x = policy.encode(&map, &data.chosen.states)?;
    let nll = action_logps(&policy, &x, &data.chosen.actions)?
        .neg()?
        .to_vec1::<f32>()?;
    let want = nll
        .iter()
        .enumerate()
        .map(|(t, l)| (t + 1) as f32 * l)
        .sum::<f32>()
        / nll.len() as f32;
    let (got, _) = ift_with(
        |p| {
            p.lambda = Lambda::Static { value: 0.0 };
            p.propagation = ift::methods::ift::Propagation::PaperEq21;
        },
        0,
    )?;
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    Ok(())
}

#[test]
fn detached_weights_change_the_gradient_not_the_loss() -> Result<()> {
    let (live, g_live) = ift_with(|_| {}, 0)?;
    let (detached, g_detached) = ift_with(|p| p.detach_weights = true, 0)?;
    assert!((live - detached).abs() < 1e-7);
    let gap: f32 = g_live
        .iter()
        .zip(&g_detached)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(gap > 1e-6, "{g_live:?} vs {g_detached:?}");
    Ok(())
}

#[test]
fn a_linear_lambda_starts_at_zero_and_ends_at_its_target() -> Result<()> {
    let linear = |p: &mut IftParams| {
        p.lambda = Lambda::Linear {
            from: 0.0,
            to: 0.2,
            steps: 150,
        }
    };
    let zero = |p: &mut IftParams| p.lambda = Lambda::Static { value: 0.0 };
    assert_eq!(ift_with(linear, 0)?, ift_with(zero, 0)?);
    assert_eq!(ift_with(linear, 150)?, ift_with(|_| {}, 0)?);
    assert_ne!(ift_with(linear, 75)?, ift_with(|_| {}, 0)?);
    Ok(())
}
