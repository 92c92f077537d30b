//! IFT's exact reductions and invariants (the golden comparison against the
//! PyTorch reference is in `ift_reference.rs`).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use ift::data::EncodedExample;
use ift::methods::ift::predict_tokens;
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::{Disturb, EmbeddingGrad, IftParams, Lambda, Objective, Prediction};
use ift::train::{forward_backward, Engine, StepContext, StepPasses};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn model() -> LlamaForCausalLM {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa");
    LlamaForCausalLM::from_pretrained(&dir, &Trainable::All, &Device::Cpu).unwrap()
}

/// Sequences of different lengths; the first has two answer spans (multi-turn).
fn batch() -> Vec<EncodedExample> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut out = Vec::new();
    for len in [16usize, 11, 9, 13] {
        let input_ids: Vec<u32> = (0..len).map(|_| rng.random_range(0..380)).collect();
        let loss_mask = (0..len)
            .map(|i| {
                if len == 16 {
                    (4..8).contains(&i) || i >= 11
                } else {
                    i >= len / 2
                }
            })
            .collect();
        out.push(EncodedExample {
            input_ids,
            loss_mask,
        });
    }
    out
}

fn run(model: &LlamaForCausalLM, objective: &Objective, micro: usize) -> StepPasses {
    let data = batch();
    let refs: Vec<&EncodedExample> = data.iter().collect();
    forward_backward(
        model,
        &refs,
        micro,
        objective,
        StepContext { step: 3, seed: 9 },
        &Device::Cpu,
        Engine::default(),
    )
    .unwrap()
}

fn params(f: impl FnOnce(&mut IftParams)) -> IftParams {
    let mut o = IftParams::default();
    f(&mut o);
    o
}

fn ift(f: impl FnOnce(&mut IftParams)) -> Objective {
    Objective::Ift(params(f))
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (values(a), values(b));
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn gamma0_lambda0_equals_sft() {
    let m = model();
    let sft = run(&m, &Objective::default(), 4);
    for mode in [EmbeddingGrad::Live, EmbeddingGrad::FrozenCopy] {
        let i = run(
            &m,
            &ift(|o| (o.gamma, o.lambda, o.embedding_grad) = (0.0, Lambda::Static(0.0), mode)),
            4,
        );
        assert!(
            (sft.loss - i.loss).abs() < 1e-6 * sft.loss,
            "{mode:?}: {} vs {}",
            sft.loss,
            i.loss
        );
        for (name, var) in m.parameters().vars() {
            let g = i.grads.get(var);
            if mode == EmbeddingGrad::FrozenCopy && name == "model.embed_tokens.weight" {
                // The frozen copy gives the (untied) input embedding no gradient.
                assert!(
                    g.is_none(),
                    "{name} must get no gradient through a frozen copy"
                );
                continue;
            }
            let d = max_rel_diff(sft.grads.get(var).unwrap(), g.unwrap());
            assert!(
                d < 1e-5,
                "{mode:?} {name}: gradient differs from SFT by {d}"
            );
        }
    }
}

#[test]
fn gamma0_is_the_token_mean_nll_under_mixed_inputs() {
    let m = model();
    for lambda in [0.2, 1.0] {
        let i = run(
            &m,
            &ift(|o| (o.gamma, o.lambda) = (0.0, Lambda::Static(lambda))),
            4,
        );
        assert!(
            (i.loss - i.extra["loss_mixed"]).abs() < 1e-6 * i.loss,
            "λ={lambda}: {} vs {}",
            i.loss,
            i.extra["loss_mixed"]
        );
        assert!(
            (i.loss - i.extra["loss_sft"]).abs() > 1e-4,
            "λ={lambda}: mixing must change the inputs"
        );
        assert_eq!(i.extra["lambda"], lambda);
    }
}

#[test]
fn detached_weights_change_gradients_not_the_loss() {
    let m = model();
    let attached = run(&m, &ift(|_| ()), 4);
    let detached = run(&m, &ift(|o| o.detach_weights = true), 4);
    assert!((attached.loss - detached.loss).abs() < 1e-7 * attached.loss);
    let (_, var) = &m.parameters().vars()[1];
    assert!(
        max_rel_diff(
            attached.grads.get(var).unwrap(),
            detached.grads.get(var).unwrap()
        ) > 1e-4
    );
    assert_eq!(
        detached.extra["neg_weight_frac"], 0.0,
        "detached weights are all positive"
    );
}

#[test]
fn ift_accumulation_1x4_equals_4x1() {
    let m = model();
    // Issue 28: sampled predictions too (each row's draws are seeded by the
    // step and the row, not by the micro-batch it shares).
    let rules = [
        Prediction::Greedy,
        Prediction::TopK { k: 3 },
        Prediction::Nucleus {
            top_p: 0.9,
            temperature: 1.0,
        },
    ];
    for prediction in rules {
        let o = ift(|p| {
            p.prediction = prediction;
            p.lambda = Lambda::Static(0.5);
        });
        let (whole, split) = (run(&m, &o, 4), run(&m, &o, 1));
        let d = (whole.loss - split.loss).abs();
        assert!(d < 1e-5 * whole.loss, "{prediction:?}: loss {d}");
        for (name, var) in m.parameters().vars() {
            if let Some(g) = whole.grads.get(var) {
                let d = max_rel_diff(g, split.grads.get(var).unwrap());
                assert!(d < 1e-4, "{prediction:?} {name}: {d}");
            }
        }
    }
}

#[test]
fn predictions_are_deterministic_or_seeded() {
    let mut rng = StdRng::seed_from_u64(1);
    let v: Vec<f32> = (0..2 * 5 * 50)
        .map(|_| rng.random_range(-3.0..3.0))
        .collect();
    let logits = Tensor::from_vec(v, (2, 5, 50), &Device::Cpu).unwrap();
    let p = |rule: Prediction, seed: u64| {
        predict_tokens(&logits, &rule, &[seed, seed.wrapping_add(1)])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
    };
    let nucleus = Prediction::Nucleus {
        top_p: 0.9,
        temperature: 1.0,
    };
    let greedy = p(Prediction::Greedy, 0);
    assert_eq!(greedy, p(Prediction::Greedy, 7));
    assert_eq!(greedy, p(Prediction::TopK { k: 1 }, 3), "top-1 is greedy");
    let second = p(Prediction::TopK { k: 2 }, 0);
    assert!(second.iter().zip(&greedy).all(|(a, b)| a != b));
    assert_eq!(second, p(Prediction::TopK { k: 2 }, 5));
    assert_eq!(p(nucleus, 11), p(nucleus, 11));
    assert_ne!(p(nucleus, 11), p(nucleus, 12));
}

#[test]
fn lambda_schedules_are_pure_functions_of_the_step() {
    let linear = params(|o| {
        o.lambda = Lambda::Linear {
            min: 0.0,
            max: 0.4,
            warmup_steps: 100,
        }
    });
    assert_eq!(linear.lambda_at(0, 1), 0.0);
    assert!((linear.lambda_at(50, 1) - 0.2).abs() < 1e-12);
    assert!((linear.lambda_at(500, 1) - 0.4).abs() < 1e-12);
    let noisy = params(|o| o.disturb = Disturb::Normal { std: 0.5 });
    let seq: Vec<f64> = (0..200).map(|s| noisy.lambda_at(s, 42)).collect();
    assert_eq!(
        seq,
        (0..200).map(|s| noisy.lambda_at(s, 42)).collect::<Vec<_>>()
    );
    assert!(seq.iter().all(|l| (0.0..=1.0).contains(l)));
    let mean = seq.iter().sum::<f64>() / 200.0;
    assert!((mean - 0.2).abs() < 0.03, "noise has mean zero: {mean}");
    assert!(
        seq.iter().any(|&l| (l - 0.2).abs() > 0.05),
        "noise is there"
    );
}
