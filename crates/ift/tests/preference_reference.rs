//! Every preference objective against the independent PyTorch reference
//! (`scripts/reference/make_preference_fixtures.py`, written from TRL's and the
//! papers' definitions; versions in the fixtures' metadata): per-sequence
//! log-probabilities of policy and reference, KTO's mismatched pairs, and for
//! each combination the loss, the implicit rewards and, for **every
//! parameter**, the gradient's norm and its projection on a fixed random
//! direction — at accumulation 1 × 4 and 4 × 1; full gradients for three.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ift::data::{EncodedExample, EncodedKto, EncodedPreference};
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::Objective;
use ift::reference::{prepare_reference_logps, ReferenceLogps};
use ift::train::{
    kto_kl_sequences, step_passes, Engine, Reference, StepBatch, StepContext, StepEnv, StepPasses,
};
use serde_json::Value;

mod golden;
use golden::{fixture, read, Fixture};

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Rows of `<p>ids` with padding stripped, masks as bools.
fn sequences(f: &Fixture, p: &str) -> Vec<EncodedExample> {
    let ids: Vec<Vec<i64>> = f.tensors[&format!("{p}ids")].to_vec2().unwrap();
    let attn: Vec<Vec<i64>> = f.tensors[&format!("{p}attention")].to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = f.tensors[&format!("{p}mask")].to_vec2().unwrap();
    (0..ids.len())
        .map(|s| {
            let n = attn[s].iter().filter(|&&a| a != 0).count();
            EncodedExample {
                input_ids: ids[s][..n].iter().map(|&x| x as u32).collect(),
                loss_mask: mask[s][..n].iter().map(|&x| x != 0).collect(),
            }
        })
        .collect()
}

fn close(a: f64, b: f64, rel: f64, what: &str) {
    assert!(
        (a - b).abs() <= rel * b.abs().max(1e-6),
        "{what}: {a} vs {b}"
    );
}

/// Rewards are β·(log π − log π_ref): a difference of two sums of tens of
/// nats, so f32 leaves an absolute error of about 1e-6 · β · |log π|.
fn close_reward(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-4 * b.abs() + 1e-5, "{what}: {a} vs {b}");
}

fn objective(c: &Value) -> Objective {
    let table: toml::Table = toml::Value::try_from(c).unwrap().try_into().unwrap();
    Objective::from_table(table).unwrap()
}

struct Data {
    pairs: Vec<EncodedPreference>,
    kto: Vec<EncodedKto>,
}

fn data(f: &Fixture) -> Data {
    let (chosen, rejected) = (sequences(f, "pair.chosen_"), sequences(f, "pair.rejected_"));
    let pairs = chosen
        .into_iter()
        .zip(rejected)
        .map(|(chosen, rejected)| EncodedPreference { chosen, rejected })
        .collect();
    let labels: Vec<i64> = f.tensors["kto.labels"].to_vec1().unwrap();
    let kto = sequences(f, "kto.")
        .into_iter()
        .zip(labels)
        .map(|(example, l)| EncodedKto {
            example,
            label: l != 0,
        })
        .collect();
    Data { pairs, kto }
}

/// Our reference pass over every sequence, with the fixture's reference model.
fn reference_logps(name: &str, d: &Data, reference: &LlamaForCausalLM) -> ReferenceLogps {
    let refs: Vec<&EncodedKto> = d.kto.iter().collect();
    let mut seqs: Vec<EncodedExample> = d
        .pairs
        .iter()
        .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
        .collect();
    seqs.extend(d.kto.iter().map(|k| k.example.clone()));
    seqs.extend(kto_kl_sequences(&refs));
    let dir = tempfile::tempdir().unwrap();
    let mut load = || Ok(reference.clone());
    let (logps, report) = prepare_reference_logps(
        &seqs,
        dir.path(),
        name,
        &mut load,
        3,
        &Device::Cpu,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(report.computed, seqs.len());
    logps
}

fn run(
    model: &LlamaForCausalLM,
    d: &Data,
    o: &Objective,
    reference: Reference<'_>,
    micro: usize,
    engine: Engine,
) -> StepPasses {
    let env = StepEnv {
        objective: o,
        reference,
        ctx: StepContext { step: 0, seed: 0 },
        device: &Device::Cpu,
        engine,
    };
    let pairs: Vec<&EncodedPreference> = d.pairs.iter().collect();
    let kto: Vec<&EncodedKto> = d.kto.iter().collect();
    let batch = match o {
        Objective::Kto(..) => StepBatch::Unpaired(&kto),
        _ => StepBatch::Pairs(&pairs),
    };
    step_passes(model, batch, micro, &env, true).unwrap()
}

fn check_model(name: &str, engine: Engine) {
    let dev = Device::Cpu;
    let model = LlamaForCausalLM::from_pretrained(
        &fixture(&format!("models/{name}")),
        &Trainable::All,
        &dev,
    )
    .unwrap();
    let reference = LlamaForCausalLM::from_pretrained(
        &fixture(&format!("preference/{name}_ref")),
        &Trainable::None,
        &dev,
    )
    .unwrap();
    let f = read(fixture(&format!("preference/{name}.safetensors")));
    let full = read(fixture(&format!("preference/{name}.full.safetensors")));
    let d = data(&f);

    // KTO's mismatched pairs are TRL's: prompt i with answer i − 1.
    let refs: Vec<&EncodedKto> = d.kto.iter().collect();
    assert_eq!(
        kto_kl_sequences(&refs),
        sequences(&f, "kto.kl_"),
        "{name}: KL sequences"
    );

    // Reference log-probabilities from our pass equal the reference's.
    let logps = reference_logps(name, &d, &reference);
    let want = |k: &str| f32s(&f.tensors[k]);
    let got = |seqs: Vec<&EncodedExample>| {
        seqs.iter()
            .map(|s| logps.get(s).unwrap())
            .collect::<Vec<_>>()
    };
    let kl = kto_kl_sequences(&refs);
    for (key, seqs) in [
        (
            "logps.ref.chosen",
            d.pairs.iter().map(|p| &p.chosen).collect::<Vec<_>>(),
        ),
        (
            "logps.ref.rejected",
            d.pairs.iter().map(|p| &p.rejected).collect(),
        ),
        ("logps.ref.kto", d.kto.iter().map(|k| &k.example).collect()),
        ("logps.ref.kl", kl.iter().collect()),
    ] {
        for (a, b) in got(seqs).iter().zip(want(key)) {
            close(*a as f64, b as f64, 1e-5, &format!("{name} {key}"));
        }
    }

    let params: Vec<String> = serde_json::from_str(&f.meta["params"]).unwrap();
    let vars: HashMap<&str, &candle_core::Var> = model
        .parameters()
        .vars()
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .collect();
    let combos: Vec<Value> = serde_json::from_str(&f.meta["combos"]).unwrap();
    let full_combos: Vec<usize> = serde_json::from_str(&full.meta["full"]).unwrap();
    let labels: Vec<bool> = d.kto.iter().map(|k| k.label).collect();
    for (i, c) in combos.iter().enumerate() {
        let o = objective(c);
        let r = Reference {
            logps: Some(&logps),
            model: Some(&reference),
        };
        for micro in [4, 1] {
            let what = format!("{name} combo {i} {c} micro {micro}");
            let out = run(&model, &d, &o, r, micro, engine);
            let loss = f32s(&f.tensors[&format!("combo.{i}.loss")])[0] as f64;
            close(out.loss, loss, 2e-5, &format!("{what}: loss"));
            // Rewards: the reference's per-example values, as our means.
            let (rc, rr) = (
                want(&format!("combo.{i}.rewards_chosen")),
                want(&format!("combo.{i}.rewards_rejected")),
            );
            let mean = |v: Vec<f32>| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
            let (wc, wr) = match o {
                Objective::Kto(..) => {
                    let by = |l: bool| {
                        rc.iter()
                            .zip(&labels)
                            .filter(|(_, &x)| x == l)
                            .map(|(&v, _)| v)
                            .collect()
                    };
                    (mean(by(true)), mean(by(false)))
                }
                _ => (mean(rc.clone()), mean(rr.clone())),
            };
            close_reward(
                out.extra["rewards/chosen"],
                wc,
                &format!("{what}: rewards/chosen"),
            );
            close_reward(
                out.extra["rewards/rejected"],
                wr,
                &format!("{what}: rewards/rejected"),
            );
            let (norms, projs) = (
                want(&format!("combo.{i}.norm")),
                want(&format!("combo.{i}.proj")),
            );
            for (p, param) in params.iter().enumerate() {
                let g = out
                    .grads
                    .get(vars[param.as_str()])
                    .unwrap_or_else(|| panic!("{what}: {param} got no gradient"));
                let dir = &f.tensors[&format!("direction.{param}")];
                let norm = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .sqrt()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64;
                let proj = g
                    .mul(dir)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap() as f64;
                let (wn, wp) = (norms[p] as f64, projs[p] as f64);
                assert!(
                    (norm - wn).abs() <= 1e-3 * wn + 1e-8,
                    "{what}: ‖∇{param}‖ {norm} vs {wn}"
                );
                assert!(
                    (proj - wp).abs() <= 1e-3 * wn + 1e-8,
                    "{what}: ⟨∇{param}, d⟩ {proj} vs {wp}"
                );
                if micro == 4 && full_combos.contains(&i) {
                    let want = f32s(&full.tensors[&format!("full.{i}.grad.{param}")]);
                    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
                    let diff = f32s(g)
                        .iter()
                        .zip(&want)
                        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(
                        diff <= 1e-3 * scale,
                        "{what}: ∇{param} differs by {diff} (max {scale})"
                    );
                }
            }
        }
    }
}

// Every check runs on the explicit engine (the default) and on the graph
// path, against the same fixtures.

#[test]
fn preference_objectives_match_the_reference_on_llama_gqa() {
    check_model("llama_gqa", Engine::Explicit);
}

#[test]
fn preference_objectives_match_the_reference_on_qwen2_tied() {
    check_model("qwen2_tied", Engine::Explicit);
}

#[test]
fn preference_objectives_match_the_reference_on_the_graph_path() {
    check_model("llama_gqa", Engine::Graph);
    check_model("qwen2_tied", Engine::Graph);
}
