//! IFT against the independent PyTorch reference written from the
//! specification (`scripts/reference/make_ift_fixtures.py`; versions in the
//! fixtures' metadata). For every combination of propagation type × side ×
//! norm, γ ∈ {0, 0.5, 0.95, 1}, λ ∈ {0, 0.2, 1}, both embedding modes and
//! detached or not: the loss, and for **every parameter** the gradient's
//! norm and its projection on a fixed random direction, to 1e-4 relative;
//! for four combinations the full gradients.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ift::data::EncodedExample;
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::{EmbeddingGrad, IftParams, Lambda, Objective};
use ift::train::{forward_backward, Engine, StepContext, StepPasses};
use serde_json::Value;

mod golden;
use golden::{fixture, read, Fixture};

fn json(f: &Fixture, key: &str) -> Value {
    serde_json::from_str(&f.meta[key]).unwrap()
}

/// The fixture batch as examples (padding stripped; the trainer re-pads).
fn examples(f: &Fixture) -> Vec<EncodedExample> {
    let ids: Vec<Vec<i64>> = f.tensors["input_ids"].to_vec2().unwrap();
    let attn: Vec<Vec<i64>> = f.tensors["attention_mask"].to_vec2().unwrap();
    let mask: Vec<Vec<i64>> = f.tensors["loss_mask"].to_vec2().unwrap();
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

fn objective(c: &Value) -> Objective {
    fn from<T: serde::de::DeserializeOwned>(c: &Value, k: &str) -> T {
        serde_json::from_value(c[k].clone()).unwrap()
    }
    Objective::Ift(IftParams {
        propagation_type: from(c, "item"),
        propagation_side: from(c, "side"),
        propagation_norm: from(c, "norm"),
        gamma: c["gamma"].as_f64().unwrap(),
        lambda: Lambda::Static(c["lambda"].as_f64().unwrap()),
        embedding_grad: match c["embedding_grad"].as_str().unwrap() {
            "live" => EmbeddingGrad::Live,
            _ => EmbeddingGrad::FrozenCopy,
        },
        detach_weights: c["detach_weights"].as_bool().unwrap(),
        ..IftParams::default()
    })
}

fn step(
    model: &LlamaForCausalLM,
    data: &[EncodedExample],
    o: &Objective,
    engine: Engine,
) -> StepPasses {
    let refs: Vec<&EncodedExample> = data.iter().collect();
    let ctx = StepContext { step: 0, seed: 0 };
    forward_backward(model, &refs, refs.len(), o, ctx, &Device::Cpu, engine).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0]
}

fn check_model(name: &str, engine: Engine) {
    let model = LlamaForCausalLM::from_pretrained(
        &fixture(&format!("models/{name}")),
        &Trainable::All,
        &Device::Cpu,
    )
    .unwrap();
    let f = read(fixture(&format!("ift/{name}.safetensors")));
    let data = examples(&f);
    let params: Vec<String> = serde_json::from_value(json(&f, "params")).unwrap();
    let vars: HashMap<&str, &candle_core::Var> = model
        .parameters()
        .vars()
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .collect();
    let combos = json(&f, "combos");
    let mut failures = Vec::new();
    for (i, c) in combos.as_array().unwrap().iter().enumerate() {
        let got = step(&model, &data, &objective(c), engine);
        let want = scalar(&f.tensors[&format!("combo.{i}.loss")]);
        if (got.loss - want).abs() > 1e-4 * want.abs().max(1e-3) {
            failures.push(format!("combo {i} {c}: loss {} vs {want}", got.loss));
        }
        let proj: Vec<f32> = f.tensors[&format!("combo.{i}.proj")].to_vec1().unwrap();
        let norm: Vec<f32> = f.tensors[&format!("combo.{i}.norm")].to_vec1().unwrap();
        for (p, pname) in params.iter().enumerate() {
            let (g_norm, g_proj) = match got.grads.get(vars[pname.as_str()]) {
                Some(g) => {
                    let dir = &f.tensors[&format!("direction.{pname}")];
                    (
                        scalar(&g.sqr().unwrap().sum_all().unwrap().sqrt().unwrap()),
                        scalar(&(g * dir).unwrap().sum_all().unwrap()),
                    )
                }
                None => (0.0, 0.0),
            };
            let tol = 1e-4 * (norm[p] as f64).max(1e-6);
            if (g_norm - norm[p] as f64).abs() > tol || (g_proj - proj[p] as f64).abs() > tol {
                failures.push(format!(
                    "combo {i} {c}: {pname}: norm {g_norm} vs {}, projection {g_proj} vs {}",
                    norm[p], proj[p]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

fn check_full(name: &str, engine: Engine) {
    let model = LlamaForCausalLM::from_pretrained(
        &fixture(&format!("models/{name}")),
        &Trainable::All,
        &Device::Cpu,
    )
    .unwrap();
    let data = examples(&read(fixture(&format!("ift/{name}.safetensors"))));
    let f = read(fixture(&format!("ift/{name}.full.safetensors")));
    for (k, c) in json(&f, "full").as_array().unwrap().iter().enumerate() {
        let got = step(&model, &data, &objective(c), engine);
        for (pname, var) in model.parameters().vars() {
            let key = format!("full.{k}.grad.{pname}");
            let Some(want) = f.tensors.get(&key) else {
                assert!(
                    got.grads.get(var).is_none(),
                    "{name} full {k}: {pname} should get no gradient"
                );
                continue;
            };
            let g = got
                .grads
                .get(var)
                .unwrap_or_else(|| panic!("{name} full {k}: no gradient for {pname}"));
            let err = (g - want).unwrap().abs().unwrap();
            let tol = (want.abs().unwrap() * 1e-3)
                .unwrap()
                .clamp(1e-5f32, f32::MAX)
                .unwrap();
            let bad = scalar(
                &err.gt(&tol)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .sum_all()
                    .unwrap(),
            );
            assert_eq!(
                bad, 0.0,
                "{name} full {k} ({c}): {pname}: {bad} entries out of tolerance"
            );
        }
    }
}

// Every check runs on both engines: the explicit one (the default) and the
// graph path it replaced, against the same fixtures.

#[test]
fn every_option_combination_matches_the_reference_llama() {
    check_model("llama_gqa", Engine::Explicit);
}

#[test]
fn every_option_combination_matches_the_reference_qwen2_tied() {
    check_model("qwen2_tied", Engine::Explicit);
}

#[test]
fn every_option_combination_matches_the_reference_graph_path() {
    check_model("llama_gqa", Engine::Graph);
    check_model("qwen2_tied", Engine::Graph);
}

#[test]
fn full_gradients_match_the_reference() {
    for engine in [Engine::Explicit, Engine::Graph] {
        check_full("llama_gqa", engine);
        check_full("qwen2_tied", engine);
    }
}
