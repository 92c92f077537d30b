//! LoRA against peft (`scripts/reference/make_lora_fixtures.py`, versions in
//! each fixture's metadata), on two tiny models and two target-module sets
//! (q/v with `alpha/r`, all seven projections with rsLoRA): the adapter
//! directory peft wrote loads; logits and loss to 1e-4; every lora_A / lora_B
//! gradient to 1e-3 relative (1e-5 absolute); the adapter switched off gives
//! the base; merging gives peft's `merge_and_unload`; a fresh adapter is
//! PEFT's initialisation; what `ift` saves reads back bit for bit.

mod golden;

use candle_core::{DType, Device, Tensor};
use ift::adapter::{
    attach_fresh, attach_saved, read_adapter_config, read_adapter_tensors, write_adapter_files,
};
use ift::engine::with_primitive_kernels;
use ift::loss::{masked_mean, token_logprobs};
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};
use ift::train::{Engine, Policy};

const CASES: [(&str, &str); 4] = [
    ("llama_gqa", "qv"),
    ("llama_gqa", "all"),
    ("qwen2_tied", "qv"),
    ("qwen2_tied", "all"),
];

struct Case {
    base: LlamaForCausalLM,
    ids: Tensor,
    mask: Tensor,
    fx: golden::Fixture,
    adapter_dir: std::path::PathBuf,
}

fn case(model: &str, set: &str) -> Case {
    let dir = golden::fixture("models").join(model);
    let base = LlamaForCausalLM::from_pretrained(&dir, &Trainable::None, &Device::Cpu).unwrap();
    let batch =
        golden::read(golden::fixture("models").join(format!("{model}.reference.safetensors")));
    Case {
        base,
        ids: batch.tensors["input_ids"].to_dtype(DType::U32).unwrap(),
        mask: batch.tensors["attention_mask"]
            .to_dtype(DType::F32)
            .unwrap(),
        fx: golden::read(golden::fixture("lora").join(format!("{model}_{set}.safetensors"))),
        adapter_dir: golden::fixture("lora").join(format!("{model}_{set}")),
    }
}

fn logits(m: &LlamaForCausalLM, c: &Case) -> Tensor {
    m.forward(ModelInput::Ids(&c.ids), &c.mask).unwrap()
}

/// Max |a − b| over real (unpadded) query positions.
fn max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap();
    let d = d.broadcast_mul(&mask.unsqueeze(2).unwrap()).unwrap();
    d.flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn adapted_logits_loss_and_every_lora_gradient_match_peft() {
    for (model, set) in CASES {
        let c = case(model, set);
        let mut m = c.base.clone();
        attach_saved(&mut m, &c.adapter_dir, true).unwrap();
        let out = logits(&m, &c);
        let d = max_diff(&out, &c.fx.tensors["logits"], &c.mask);
        assert!(d < 1e-4, "{model}_{set}: max logit difference {d}");

        let t = c.mask.dim(1).unwrap();
        let target = c.mask.narrow(1, 1, t - 1).unwrap();
        let nll = token_logprobs(&out, &c.ids).unwrap().neg().unwrap();
        let loss = masked_mean(&nll, &target).unwrap();
        let want = c.fx.tensors["loss"].to_vec1::<f32>().unwrap()[0];
        let got = loss.to_scalar::<f32>().unwrap();
        assert!(
            (got - want).abs() < 1e-4,
            "{model}_{set}: loss {got} vs {want}"
        );

        let grads = loss.backward().unwrap();
        // The frozen base records no weight gradient (model/frozen.rs): not
        // a projection's, not the vocabulary head's.
        for (name, t) in m.parameters().named() {
            assert!(
                grads.get(t).is_none(),
                "{model}_{set}: a gradient was kept for frozen {name}"
            );
        }
        let vars = m.parameters().vars();
        let expected =
            c.fx.tensors
                .keys()
                .filter(|k| k.starts_with("grad."))
                .count();
        assert_eq!(
            vars.len(),
            expected,
            "{model}_{set}: trainable tensors vs peft's"
        );
        for (name, var) in vars {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{name}: no gradient"));
            let want = &c.fx.tensors[&format!("grad.{name}")];
            let err = (g - want).unwrap().abs().unwrap();
            let tol = (want.abs().unwrap() * 1e-3)
                .unwrap()
                .clamp(1e-5f32, f32::MAX)
                .unwrap();
            let bad: f32 = err
                .gt(&tol)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert_eq!(
                bad, 0.0,
                "{model}_{set}: gradient of {name}: {bad} entries out of tolerance"
            );
        }
    }
}

/// The same gradients on the explicit engine (the training path), with its
/// fused kernels and with their primitive-op fallbacks.
#[test]
fn the_explicit_engine_gives_peft_lora_gradients() {
    for primitive in [false, true] {
        for (model, set) in CASES {
            let c = case(model, set);
            let mut m = c.base.clone();
            attach_saved(&mut m, &c.adapter_dir, true).unwrap();
            let run = || {
                let policy = Policy::new(&m, Engine::Explicit, true);
                golden::nll_backward(&policy, ModelInput::Ids(&c.ids), &c.mask, &c.ids)
            };
            let (loss, grads) = match primitive {
                true => with_primitive_kernels(run),
                false => run(),
            };
            let want = c.fx.tensors["loss"].to_vec1::<f32>().unwrap()[0];
            assert!(
                (loss - want).abs() < 1e-4,
                "{model}_{set}: loss {loss} vs {want}"
            );
            let vars = m.parameters().vars();
            assert!(!vars.is_empty());
            for (name, var) in vars {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("{model}_{set} {name}: no gradient"));
                let want = &c.fx.tensors[&format!("grad.{name}")];
                let err = golden::max_abs_diff(g, want);
                let tol = 1e-3 * golden::max_abs(want) + 1e-5;
                assert!(
                    err <= tol,
                    "{model}_{set} (primitive kernels: {primitive}) {name}: max error {err} > {tol}"
                );
            }
        }
    }
}

#[test]
fn adapter_off_is_the_base_and_merging_matches_peft() {
    for (model, set) in CASES {
        let c = case(model, set);
        let mut m = c.base.clone();
        attach_saved(&mut m, &c.adapter_dir, false).unwrap();
        let off = logits(&m.without_adapter(), &c);
        let d = max_diff(&off, &c.fx.tensors["base_logits"], &c.mask);
        assert!(
            d < 1e-4,
            "{model}_{set}: adapter off vs peft's disable_adapter: {d}"
        );
        let merged = m.merged().unwrap();
        assert!(merged.adapter().is_none());
        let d = max_diff(
            &logits(&merged, &c),
            &c.fx.tensors["merged_logits"],
            &c.mask,
        );
        assert!(
            d < 1e-4,
            "{model}_{set}: merged vs peft's merge_and_unload: {d}"
        );
    }
}

/// PEFT's initialisation: B = 0 (so step 0 is the base exactly) and A
/// Kaiming-uniform, whose largest entry is close to peft's own fresh one.
#[test]
fn a_fresh_adapter_is_peft_initialisation_and_changes_nothing() {
    for (model, set) in CASES {
        let c = case(model, set);
        let config = read_adapter_config(&c.adapter_dir).unwrap();
        let mut m = c.base.clone();
        attach_fresh(&mut m, &config, 7).unwrap();
        let same = max_diff(&logits(&m, &c), &logits(&c.base, &c), &c.mask);
        assert_eq!(
            same, 0.0,
            "{model}_{set}: a fresh adapter changed the logits"
        );
        for (name, t) in m.adapter_tensors() {
            let max = golden::max_abs(&t);
            if name.contains("lora_B") {
                assert_eq!(max, 0.0, "{name}");
                continue;
            }
            let peft: f32 = c.fx.tensors[&format!("init_max_abs.{name}")]
                .to_vec1::<f32>()
                .unwrap()[0];
            assert!(
                (max - peft).abs() < 0.05 * peft,
                "{name}: max |A| {max}, peft's {peft}"
            );
        }
    }
}

#[test]
fn what_ift_saves_reads_back_bit_for_bit() {
    let c = case("qwen2_tied", "all");
    let mut m = c.base.clone();
    let saved = attach_saved(&mut m, &c.adapter_dir, false).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_adapter_files(&m, tmp.path()).unwrap();
    assert_eq!(read_adapter_config(tmp.path()).unwrap(), saved);
    let ours = read_adapter_tensors(tmp.path(), &Device::Cpu).unwrap();
    let peft = read_adapter_tensors(&c.adapter_dir, &Device::Cpu).unwrap();
    assert_eq!(ours.len(), peft.len());
    for (name, t) in &peft {
        assert_eq!(golden::max_abs_diff(t, &ours[name]), 0.0, "{name}");
    }
}
