//! A training pass that reuses another pass's first positions
//! (`forward_greedy_sharing` → `forward_logps_after`, what IFT's two passes
//! do before the first response token) against the same pass computed whole:
//! log-probabilities, every parameter gradient and the input embeddings'
//! gradient, on the three tiny models, with the fused kernels and with their
//! primitive fallbacks; and the prediction pass's own outputs unchanged.

mod golden;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use ift::engine::{
    forward_greedy, forward_greedy_sharing, forward_logps, forward_logps_after,
    with_primitive_kernels, EngineGrads,
};
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};

const MODELS: [&str; 3] = ["llama_gqa", "llama3_rope", "qwen2_tied"];

fn load(name: &str) -> (LlamaForCausalLM, Tensor, Tensor) {
    let dir = golden::fixture("models");
    let model =
        LlamaForCausalLM::from_pretrained(&dir.join(name), &Trainable::All, &Device::Cpu).unwrap();
    let r = candle_core::safetensors::load(
        dir.join(format!("{name}.reference.safetensors")),
        &Device::Cpu,
    )
    .unwrap();
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let attention = r["attention_mask"].to_dtype(DType::F32).unwrap();
    (model, ids, attention)
}

/// The embeddings of `ids`, with every position from `s` on replaced by a
/// blend with another token's embedding (as IFT mixes response inputs).
fn mixed_after(model: &LlamaForCausalLM, ids: &Tensor, s: usize) -> Tensor {
    let (b, t) = ids.dims2().unwrap();
    let e = model.embed_tokens().detach();
    let vocab = e.dim(0).unwrap() as u32;
    let lookup = |ids: &Tensor| {
        e.index_select(&ids.flatten_all().unwrap(), 0)
            .unwrap()
            .reshape((b, t, e.dim(1).unwrap()))
            .unwrap()
    };
    let other: Vec<u32> = ids
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, &id)| if i % t < s { id } else { (id * 7 + 3) % vocab })
        .collect();
    let other = Tensor::from_vec(other, (b, t), &Device::Cpu).unwrap();
    // Positions before s: exactly the truth; after: 0.7·truth + 0.3·other.
    let keep: Vec<f32> = (0..b * t).map(|i| (i % t < s) as u8 as f32).collect();
    let keep = Tensor::from_vec(keep, (b, t, 1), &Device::Cpu).unwrap();
    let mixed = ((lookup(ids) * 0.7).unwrap() + (lookup(&other) * 0.3).unwrap()).unwrap();
    let truth = lookup(ids);
    (truth.broadcast_mul(&keep).unwrap() + mixed.broadcast_mul(&(1.0 - &keep).unwrap()).unwrap())
        .unwrap()
}

type Pass = (Tensor, Option<ift::engine::Tape>);

/// The training pass over `embeds`, every position computed.
fn whole_pass(model: &LlamaForCausalLM, embeds: &Tensor, attention: &Tensor, ids: &Tensor) -> Pass {
    forward_logps(
        model,
        ModelInput::Embeds(embeds),
        attention,
        ids,
        None,
        true,
    )
    .unwrap()
}

/// The same pass continuing from `prefix`.
fn pass_after(
    prefix: ift::engine::SharedPrefix,
    model: &LlamaForCausalLM,
    embeds: &Tensor,
    attention: &Tensor,
    ids: &Tensor,
) -> Pass {
    forward_logps_after(
        prefix,
        model,
        ModelInput::Embeds(embeds),
        attention,
        ids,
        None,
    )
    .unwrap()
}

fn by_name(g: &EngineGrads) -> HashMap<String, Tensor> {
    g.params.iter().cloned().collect()
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    let diff = golden::max_abs_diff(got, want);
    let scale = golden::max_abs(want).max(1e-3);
    assert!(
        diff <= 2e-5 * scale,
        "{what}: max |diff| {diff} (scale {scale})"
    );
}

fn shared_pass_equals_whole_pass() {
    for name in MODELS {
        let (model, ids, attention) = load(name);
        let (b, t) = ids.dims2().unwrap();
        for s in [1, t / 2, t - 1] {
            let embeds = mixed_after(&model, &ids, s);
            let dlogp = Tensor::randn(0f32, 1.0, (b, t - 1), &Device::Cpu).unwrap();
            let run_whole = whole_pass(&model, &embeds, &attention, &ids);
            let (best, lp, prefix) =
                forward_greedy_sharing(&model, ModelInput::Ids(&ids), &attention, &ids, None, s)
                    .unwrap();
            assert_eq!(prefix.positions(), s);
            // The prediction pass gives what it gives without recording.
            let (best0, lp0) =
                forward_greedy(&model, ModelInput::Ids(&ids), &attention, &ids, None).unwrap();
            assert_eq!(
                best.to_vec2::<u32>().unwrap(),
                best0.to_vec2::<u32>().unwrap()
            );
            assert_close(&lp, &lp0, &format!("{name} s={s}: prediction pass logp"));
            let run_shared = pass_after(prefix, &model, &embeds, &attention, &ids);
            let what = format!("{name} s={s}");
            assert_close(&run_shared.0, &run_whole.0, &format!("{what}: logp"));
            let whole = run_whole.1.unwrap().backward(&model, &dlogp).unwrap();
            let shared = run_shared.1.unwrap().backward(&model, &dlogp).unwrap();
            let (w, sh) = (by_name(&whole), by_name(&shared));
            // Every parameter but an untied embedding (the input is embeddings).
            assert!(w.len() + 1 >= model.parameters().vars().len(), "{what}");
            assert_eq!(w.len(), sh.len(), "{what}: gradient count");
            for (param, g) in &w {
                assert_close(&sh[param], g, &format!("{what}: {param}"));
            }
            assert_close(
                shared.input_embeds.as_ref().unwrap(),
                whole.input_embeds.as_ref().unwrap(),
                &format!("{what}: input embeddings"),
            );
        }
    }
}

#[test]
fn fused_kernels_shared_pass_equals_whole_pass() {
    shared_pass_equals_whole_pass();
}

#[test]
fn primitive_kernels_shared_pass_equals_whole_pass() {
    with_primitive_kernels(shared_pass_equals_whole_pass);
}

/// A prefix is refused, not misused, by a pass over another batch shape or
/// with nothing after it.
#[test]
fn a_prefix_of_another_batch_is_an_error() {
    let (model, ids, attention) = load("llama_gqa");
    let (_, t) = ids.dims2().unwrap();
    let err = forward_greedy_sharing(&model, ModelInput::Ids(&ids), &attention, &ids, None, t);
    assert!(err.is_err(), "a prefix as long as the sequence");
    let (_, _, prefix) =
        forward_greedy_sharing(&model, ModelInput::Ids(&ids), &attention, &ids, None, 2).unwrap();
    let (short_ids, short_mask) = (
        ids.narrow(1, 0, t - 1).unwrap(),
        attention.narrow(1, 0, t - 1).unwrap(),
    );
    let out = forward_logps_after(
        prefix,
        &model,
        ModelInput::Ids(&short_ids),
        &short_mask,
        &short_ids,
        None,
    );
    let msg = out
        .err()
        .expect("a shorter batch must be refused")
        .to_string();
    assert!(msg.contains("shared prefix"), "{msg}");
}

/// The later pass writes its positions into the recorded pass's own
/// buffers, never into the caller's: input embeddings given to the recorded
/// pass come out unchanged, and the result still equals the whole pass.
#[test]
fn the_recorded_pass_input_is_left_alone() {
    let (model, ids, attention) = load("llama_gqa");
    let (_, t) = ids.dims2().unwrap();
    let s = t / 2;
    let truth = mixed_after(&model, &ids, t);
    let before: Vec<f32> = truth.flatten_all().unwrap().to_vec1().unwrap();
    let embeds = mixed_after(&model, &ids, s);
    let (_, _, prefix) = forward_greedy_sharing(
        &model,
        ModelInput::Embeds(&truth),
        &attention,
        &ids,
        None,
        s,
    )
    .unwrap();
    let shared = pass_after(prefix, &model, &embeds, &attention, &ids);
    let after: Vec<f32> = truth.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(
        before, after,
        "the recorded pass's input embeddings changed"
    );
    let whole = whole_pass(&model, &embeds, &attention, &ids);
    assert_close(&shared.0, &whole.0, "logp after an embeddings prefix");
}
