//! The explicit engine (`ift::engine`) against `transformers`' golden
//! gradients (`scripts/reference/make_model_fixtures.py`, the fixtures
//! `model_reference.rs` checks the graph path with) and against the graph
//! path itself: log-probabilities, every parameter gradient and the input
//! embeddings' gradient, on the three tiny models (GQA untied Llama, Llama 3
//! with rope scaling, Qwen2 with biases and a padded vocabulary).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use ift::engine::{forward_greedy, forward_logps, with_primitive_kernels};
use ift::loss::token_logprobs;
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};

const MODELS: [&str; 3] = ["llama_gqa", "llama3_rope", "qwen2_tied"];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

fn load(name: &str, trainable: &Trainable) -> (LlamaForCausalLM, HashMap<String, Tensor>) {
    let model =
        LlamaForCausalLM::from_pretrained(&fixtures().join(name), trainable, &Device::Cpu).unwrap();
    let path = fixtures().join(format!("{name}.reference.safetensors"));
    (
        model,
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap(),
    )
}

fn inputs(r: &HashMap<String, Tensor>) -> (Tensor, Tensor, Tensor) {
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let attention = r["attention_mask"].to_dtype(DType::F32).unwrap();
    let t = attention.dim(1).unwrap();
    let targets = attention.narrow(1, 1, t - 1).unwrap();
    (ids, attention, targets)
}

/// A 0/1 `(b, t − 1)` tensor as the engine's wanted rows.
fn wanted_of(m: &Tensor) -> Vec<Vec<bool>> {
    let rows = m.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
    rows.iter()
        .map(|r| r.iter().map(|&x| x != 0.0).collect())
        .collect()
}

/// Entries of `got` outside `|want|·rel` (at least `abs`), and the worst error.
fn out_of_tolerance(got: &Tensor, want: &Tensor, rel: f32, abs: f32) -> (f32, f32) {
    let err = (got - want).unwrap().abs().unwrap();
    let tol = (want.abs().unwrap() * rel as f64)
        .unwrap()
        .clamp(abs, f32::MAX)
        .unwrap();
    let bad = err.gt(&tol).unwrap().to_dtype(DType::F32).unwrap();
    let bad = bad.sum_all().unwrap().to_scalar::<f32>().unwrap();
    let worst = err.flatten_all().unwrap().max(0).unwrap();
    (bad, worst.to_scalar::<f32>().unwrap())
}

/// transformers' mean next-token NLL through the engine: `∂L/∂logp = −mask/n`.
fn engine_gradients_match_transformers() {
    for name in MODELS {
        let (model, r) = load(name, &Trainable::All);
        let (ids, attention, targets) = inputs(&r);
        // The head on the targets' rows only (the fixtures pad some rows).
        let wanted = wanted_of(&targets);
        let (logp, tape) = forward_logps(
            &model,
            ModelInput::Ids(&ids),
            &attention,
            &ids,
            Some(&wanted),
            true,
        )
        .unwrap();
        let n = targets.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        let loss = (logp
            .mul(&targets)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64)
            / -n;
        let want = r["loss"].flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((loss - want).abs() < 1e-4, "{name}: loss {loss} vs {want}");
        let dlogp = (targets.clone() * (-1.0 / n)).unwrap();
        let grads = tape.unwrap().backward(&model, &dlogp).unwrap();
        let expected = r.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(grads.params.len(), expected, "{name}: gradient count");
        for (pname, g) in &grads.params {
            let want = &r[&format!("grad.{pname}")];
            let (bad, worst) = out_of_tolerance(g, want, 1e-3, 1e-5);
            assert_eq!(
                bad, 0.0,
                "{name}: {pname}: {bad} entries out (worst {worst})"
            );
        }
    }
}

/// Same log-probabilities as the graph path at every trained position.
fn engine_logprobs_equal_graph_path() {
    for name in MODELS {
        let (model, r) = load(name, &Trainable::None);
        let (ids, attention, targets) = inputs(&r);
        let (logp, tape) =
            forward_logps(&model, ModelInput::Ids(&ids), &attention, &ids, None, false).unwrap();
        assert!(tape.is_none());
        let logits = model.forward(ModelInput::Ids(&ids), &attention).unwrap();
        let want = token_logprobs(&logits, &ids).unwrap();
        let diff = (logp - want).unwrap().abs().unwrap().mul(&targets).unwrap();
        let diff = diff
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 2e-5, "{name}: log-probabilities differ by {diff}");
    }
}

/// With embeddings as input (IFT's mixed inputs) and weighted positions, the
/// engine's parameter and input-embedding gradients equal autograd's over
/// the graph path; a frozen prefix gets no gradient.
fn embeds_input_and_frozen_params_match_graph_path() {
    let frozen = Trainable::AllExcept(vec![
        "model.embed_tokens".into(),
        "model.layers.0.mlp".into(),
    ]);
    for name in MODELS {
        let (model, r) = load(name, &frozen);
        let (ids, attention, targets) = inputs(&r);
        let embeds = Var::from_tensor(&model.embed(&ids).unwrap().detach()).unwrap();
        let (b, t1) = targets.dims2().unwrap();
        let w: Vec<f32> = (0..b * t1)
            .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.4)
            .collect();
        // Every third target dropped from the head's rows, and from the weights.
        let keep: Vec<f32> = (0..b * t1).map(|i| (i % 3 != 1) as u8 as f32).collect();
        let keep = (Tensor::from_vec(keep, (b, t1), &Device::Cpu).unwrap() * &targets).unwrap();
        let w = (Tensor::from_vec(w, (b, t1), &Device::Cpu).unwrap() * &keep).unwrap();
        let wanted = wanted_of(&keep);

        let logits = model
            .forward(ModelInput::Embeds(embeds.as_tensor()), &attention)
            .unwrap();
        let graph = token_logprobs(&logits, &ids).unwrap();
        let store = graph
            .mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();

        let (_, tape) = forward_logps(
            &model,
            ModelInput::Embeds(embeds.as_tensor()),
            &attention,
            &ids,
            Some(&wanted),
            true,
        )
        .unwrap();
        let grads = tape.unwrap().backward(&model, &w).unwrap();
        let vars = model.parameters().vars();
        assert_eq!(
            grads.params.len(),
            vars.len(),
            "{name}: one gradient per trainable"
        );
        for (pname, var) in vars {
            let (_, g) = grads.params.iter().find(|(n, _)| n == pname).unwrap();
            let (bad, worst) = out_of_tolerance(g, store.get(var).unwrap(), 1e-3, 1e-5);
            assert_eq!(
                bad, 0.0,
                "{name}: {pname}: {bad} entries out (worst {worst})"
            );
        }
        assert!(grads
            .params
            .iter()
            .all(|(n, _)| !n.starts_with("model.layers.0.mlp")));
        let de = grads.input_embeds.unwrap();
        let want = store.get(embeds.as_tensor()).unwrap();
        let mask = attention.unsqueeze(2).unwrap();
        let (bad, worst) = out_of_tolerance(
            &de.broadcast_mul(&mask).unwrap(),
            &want.broadcast_mul(&mask).unwrap(),
            1e-3,
            1e-5,
        );
        assert_eq!(
            bad, 0.0,
            "{name}: input embeddings: {bad} out (worst {worst})"
        );
    }
}

/// With only some rows wanted, those rows' log-probabilities and greedy
/// predictions are the all-rows pass's, and the others read 0.
fn wanted_rows_match_all_rows() {
    for name in MODELS {
        let (model, r) = load(name, &Trainable::None);
        let (ids, attention, targets) = inputs(&r);
        let (b, t1) = targets.dims2().unwrap();
        let keep: Vec<f32> = (0..b * t1).map(|i| (i % 4 == 2) as u8 as f32).collect();
        let keep = (Tensor::from_vec(keep, (b, t1), &Device::Cpu).unwrap() * &targets).unwrap();
        let wanted = wanted_of(&keep);
        let input = || ModelInput::Ids(&ids);
        let all = forward_logps(&model, input(), &attention, &ids, None, false).unwrap();
        let some = forward_logps(&model, input(), &attention, &ids, Some(&wanted), false).unwrap();
        let (best_all, lp_all) = forward_greedy(&model, input(), &attention, &ids, None).unwrap();
        let (best, lp) = forward_greedy(&model, input(), &attention, &ids, Some(&wanted)).unwrap();
        for (got, want) in [(&some.0, &all.0), (&lp, &lp_all)] {
            let got = got.to_vec2::<f32>().unwrap();
            let want = want.to_vec2::<f32>().unwrap();
            for (bi, row) in wanted.iter().enumerate() {
                for (i, &w) in row.iter().enumerate() {
                    let expect = if w { want[bi][i] } else { 0.0 };
                    let diff = (got[bi][i] - expect).abs();
                    assert!(
                        diff < 1e-5,
                        "{name} [{bi}, {i}] (wanted {w}): off by {diff}"
                    );
                }
            }
        }
        let best = best.to_vec2::<u32>().unwrap();
        let best_all = best_all.to_vec2::<u32>().unwrap();
        for (bi, row) in wanted.iter().enumerate() {
            for (i, &w) in row.iter().enumerate() {
                let expect = if w { best_all[bi][i] } else { 0 };
                assert_eq!(best[bi][i], expect, "{name} argmax [{bi}, {i}]");
            }
            assert_eq!(best[bi][t1], 0, "{name}: the last position is not wanted");
        }
    }
}

// Each check runs with the fused CPU kernels and with their primitive-op
// fallbacks (what other devices run).

#[test]
fn fused_kernels_gradients_match_transformers() {
    engine_gradients_match_transformers();
}

#[test]
fn primitive_kernels_gradients_match_transformers() {
    with_primitive_kernels(engine_gradients_match_transformers);
}

#[test]
fn fused_kernels_logprobs_equal_graph_path() {
    engine_logprobs_equal_graph_path();
}

#[test]
fn primitive_kernels_logprobs_equal_graph_path() {
    with_primitive_kernels(engine_logprobs_equal_graph_path);
}

#[test]
fn fused_kernels_embeds_and_frozen_params_match_graph_path() {
    embeds_input_and_frozen_params_match_graph_path();
}

#[test]
fn primitive_kernels_embeds_and_frozen_params_match_graph_path() {
    with_primitive_kernels(embeds_input_and_frozen_params_match_graph_path);
}

#[test]
fn fused_kernels_wanted_rows_match_all_rows() {
    wanted_rows_match_all_rows();
}

#[test]
fn primitive_kernels_wanted_rows_match_all_rows() {
    with_primitive_kernels(wanted_rows_match_all_rows);
}
