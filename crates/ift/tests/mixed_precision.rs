//! `train.dtype = "bf16"` (issue 15), checked on the CPU: the explicit
//! engine's bf16 gradients track the f32 ones (bf16 keeps 8 bits of mantissa,
//! so the bounds are loose: 0.5 % on the loss, 5 % relative L2 per gradient;
//! measured at most 0.03 % and 2.7 %)
//! while really differing from them; master gradients come back in f32; a
//! bf16 run of several objectives trains; its checkpoints hold f32 master
//! weights and `final/` the base's declared dtype; configurations bf16 cannot
//! serve are refused by name.

mod golden;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use golden::l2;
use ift::adapter::{attach_fresh, TargetModule};
use ift::config::RunConfig;
use ift::engine::with_primitive_kernels;
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};
use ift::objective::ObjectiveKind;
use ift::run::train_from_config;
use ift::train::{Engine, Observer, Policy};

const MODELS: [&str; 3] = ["llama_gqa", "llama3_rope", "qwen2_tied"];

fn batch(model: &str) -> (Tensor, Tensor) {
    let f = golden::read(golden::fixture("models").join(format!("{model}.reference.safetensors")));
    (
        f.tensors["input_ids"].to_dtype(DType::U32).unwrap(),
        f.tensors["attention_mask"].to_dtype(DType::F32).unwrap(),
    )
}

/// The masked mean NLL and every trainable tensor's gradient.
fn loss_and_grads(model: &LlamaForCausalLM, ids: &Tensor, mask: &Tensor) -> (f32, Vec<Tensor>) {
    let policy = Policy::new(model, Engine::Explicit, true);
    let (loss, store) = golden::nll_backward(&policy, ModelInput::Ids(ids), mask, ids);
    let grads = golden::trainable_grads(model, &store);
    (loss, grads.into_iter().map(|(_, g)| g).collect())
}

fn compare(label: &str, model: &LlamaForCausalLM, ids: &Tensor, mask: &Tensor) {
    let (l32, g32) = loss_and_grads(model, ids, mask);
    for primitive in [false, true] {
        let bf16 = model.with_compute_dtype(DType::BF16);
        let run = || loss_and_grads(&bf16, ids, mask);
        let (l16, g16) = match primitive {
            true => with_primitive_kernels(run),
            false => run(),
        };
        let loss_rel = ((l16 - l32) / l32).abs();
        assert!(loss_rel < 5e-3, "{label}: bf16 loss {l16} vs f32 {l32}");
        let (mut differs, mut worst) = (false, 0f32);
        for (i, (a, b)) in g16.iter().zip(&g32).enumerate() {
            assert_eq!(a.dtype(), DType::F32, "{label}: gradient {i} is not f32");
            let rel = l2(&(a - b).unwrap()) / l2(b).max(1e-12);
            assert!(
                rel < 5e-2,
                "{label} (primitive {primitive}): gradient {i} off by {rel}"
            );
            differs |= rel > 0.0;
            worst = worst.max(rel);
        }
        assert!(differs, "{label}: bf16 gave exactly the f32 gradients");
        // The figures docs/gpu.md quotes (`-- --nocapture` shows them).
        eprintln!(
            "bf16 vs f32, {label} (primitive kernels: {primitive}): loss {loss_rel:.1e}, worst gradient {worst:.1e} (relative L2)"
        );
    }
}

#[test]
fn bf16_gradients_track_f32_on_the_three_models() {
    for name in MODELS {
        let dir = golden::fixture("models").join(name);
        let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::All, &Device::Cpu).unwrap();
        let (ids, mask) = batch(name);
        compare(name, &model, &ids, &mask);
    }
}

#[test]
fn bf16_lora_gradients_track_f32() {
    let dir = golden::fixture("models").join("llama_gqa");
    let mut model =
        LlamaForCausalLM::from_pretrained(&dir, &Trainable::None, &Device::Cpu).unwrap();
    attach_fresh(&mut model, &golden::small_lora(&TargetModule::ALL, 0.0), 3).unwrap();
    golden::nonzero_lora_b(&model, 5, 0.1);
    let (ids, mask) = batch("llama_gqa");
    compare("lora", &model, &ids, &mask);
}

struct Quiet;
impl Observer for Quiet {}

/// A copy of the tiny model whose config.json declares bfloat16.
fn bf16_base(dir: &Path) -> std::path::PathBuf {
    let src = golden::fixture("models/llama_gqa");
    let dst = dir.join("base");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let path = dst.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["torch_dtype"] = "bfloat16".into();
    cfg.as_object_mut().unwrap().remove("dtype");
    std::fs::write(&path, cfg.to_string()).unwrap();
    dst
}

fn config(dir: &Path, kind: ObjectiveKind, extra: &[&str]) -> RunConfig {
    let data = golden::write_records(dir, kind);
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\n[objective]\nkind = \"{}\"\n[train]\noutput_dir = {:?}\nmax_steps = 4\nbatch_size = 2\nmicro_batch_size = 1\nlr = 1e-2\noptimizer = \"adamw\"\ndtype = \"bf16\"\nsave_every = 2\nkeep_last = 0\nreference_cache = {:?}\n",
        bf16_base(dir),
        data,
        kind.name(),
        dir.join(format!("run-{}", kind.name())),
        dir.join("cache"),
    );
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    RunConfig::parse(&text, "bf16.toml", &extra).unwrap()
}

fn safetensors_dtypes(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut d: Vec<String> = st
        .tensors()
        .iter()
        .map(|(_, v)| format!("{:?}", v.dtype()))
        .collect();
    d.dedup();
    d
}

#[test]
fn a_bf16_run_trains_keeps_f32_masters_and_saves_the_declared_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [ObjectiveKind::Sft, ObjectiveKind::Ift, ObjectiveKind::Dpo] {
        let c = config(tmp.path(), kind, &[]);
        train_from_config(&c, None, &AtomicBool::new(false), &mut Quiet).unwrap();
        let out = &c.train.output_dir;
        let losses: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
            .collect();
        assert_eq!(losses.len(), 4, "{kind:?}: {losses:?}");
        assert!(losses.iter().all(|l| l.is_finite()), "{kind:?}: {losses:?}");
        assert_eq!(
            safetensors_dtypes(&out.join("checkpoint-2/model.safetensors")),
            ["F32"],
            "{kind:?}: a checkpoint holds the f32 master weights"
        );
        assert_eq!(
            safetensors_dtypes(&out.join("final/model.safetensors")),
            ["BF16"],
            "{kind:?}: final/ is in the dtype the base declares"
        );
        let cfg = std::fs::read_to_string(out.join("final/config.json")).unwrap();
        assert!(cfg.contains("bfloat16"), "{cfg}");
    }
    // SFT at lr 1e-2 on four repeated records learns: the last loss is lower.
    let mut c = config(tmp.path(), ObjectiveKind::Sft, &["train.max_steps=8"]);
    let out = tmp.path().join("more");
    c.train.output_dir = out.clone();
    train_from_config(&c, None, &AtomicBool::new(false), &mut Quiet).unwrap();
    let losses: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64())
        .collect();
    assert!(losses[7] < losses[0], "bf16 SFT did not learn: {losses:?}");
}

#[test]
fn bf16_is_refused_where_it_cannot_run() {
    let text = |kind: &str| {
        format!("[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n[objective]\nkind = \"{kind}\"\n[train]\ndtype = \"bf16\"\n")
    };
    let e = RunConfig::parse(&text("tdpo"), "a.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.dtype") && e.contains("TDPO"), "{e}");
    let e = RunConfig::parse(&text("sft").replace("bf16", "f16"), "a.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype") && e.contains("f16"), "{e}");
}
