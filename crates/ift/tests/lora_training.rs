//! LoRA in the trainer (issue 14): every objective trains only the adapter
//! and writes PEFT directories; optimiser state exists for adapter weights
//! only; a preference objective's reference is the base with the adapter
//! switched off (no second model load, no cache unless configured), equal to
//! an explicitly loaded reference; resume is exact with dropout on; an adapter
//! continues from `model.adapter`; config errors name their key.

mod golden;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use golden::{fixture, max_abs};
use ift::adapter::{attach_saved, read_adapter_tensors, ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use ift::config::RunConfig;
use ift::model::{checkpoint_loads_on_this_thread, LlamaForCausalLM, Trainable};
use ift::objective::ObjectiveKind;
use ift::run::{train_from_config, RunOutcome};
use ift::train::{Observer, RunEnd, StepMetrics};

fn base() -> PathBuf {
    fixture("models/llama_gqa")
}

/// A LoRA run of `kind` in `dir/out`, two steps of two examples.
fn config(dir: &Path, kind: ObjectiveKind, out: &str, extra: &[&str]) -> RunConfig {
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\n[objective]\nkind = \"{}\"\n[train]\noutput_dir = {:?}\nmax_steps = 2\nbatch_size = 2\nmicro_batch_size = 1\nlr = 1e-2\noptimizer = \"adamw\"\nsave_every = 1\nkeep_last = 0\n[adapter]\nkind = \"lora\"\nr = 4\nalpha = 8\ndropout = 0.0\n",
        base(),
        golden::write_records(dir, kind),
        kind.name(),
        dir.join(out),
    );
    let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    RunConfig::parse(&text, "test.toml", &o).unwrap()
}

struct Quiet;
impl Observer for Quiet {}

fn run(
    c: &RunConfig,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
    stop: &AtomicBool,
) -> RunOutcome {
    let resume = resume.map(|dir| ift::resume::Resume {
        checkpoint: dir.to_path_buf(),
        force: false,
        notices: Vec::new(),
    });
    train_from_config(c, resume.as_ref(), stop, obs).unwrap()
}

#[test]
fn every_objective_trains_only_the_adapter_and_writes_peft_directories() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ObjectiveKind::ALL {
        let c = config(tmp.path(), kind, kind.name(), &[]);
        let end = run(&c, None, &mut Quiet, &AtomicBool::new(false)).end;
        let RunEnd::Finished { final_dir, .. } = end else {
            panic!("{kind:?} stopped")
        };
        let ck = c.train.output_dir.join("checkpoint-1");
        for dir in [&final_dir, &ck] {
            assert!(dir.join(ADAPTER_CONFIG).is_file() && dir.join(ADAPTER_WEIGHTS).is_file());
            assert!(
                !dir.join("model.safetensors").exists(),
                "{}: a full model was saved",
                dir.display()
            );
        }
        let adapter = read_adapter_tensors(&final_dir, &Device::Cpu).unwrap();
        assert_eq!(
            adapter.len(),
            2 * 2 * 7,
            "{kind:?}: 2 layers × 7 projections × (A, B)"
        );
        let b_moved = adapter
            .iter()
            .any(|(n, t)| n.ends_with("lora_B.weight") && max_abs(t) > 0.0);
        assert!(b_moved, "{kind:?}: the adapter did not train");
        let optimizer =
            candle_core::safetensors::load(ck.join("optimizer.safetensors"), &Device::Cpu).unwrap();
        assert!(!optimizer.is_empty());
        // `step` is the optimiser's global step count; every other entry is
        // a per-parameter buffer named `<buffer>.<parameter>`.
        for name in optimizer.keys().filter(|k| *k != "step") {
            assert!(
                name.contains(".lora_A.") || name.contains(".lora_B."),
                "{kind:?}: optimiser state for {name}"
            );
        }
    }
}

fn dpo_outcome(c: &RunConfig) -> (RunOutcome, usize) {
    let before = checkpoint_loads_on_this_thread();
    let out = run(c, None, &mut Quiet, &AtomicBool::new(false));
    (out, checkpoint_loads_on_this_thread() - before)
}

#[test]
fn lora_dpo_loads_one_model_and_equals_an_explicit_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics =
        |c: &RunConfig| std::fs::read_to_string(c.train.output_dir.join("metrics.jsonl")).unwrap();
    // The reference: the base with the adapter off, scored per micro-batch.
    let off = config(tmp.path(), ObjectiveKind::Dpo, "off", &[]);
    let (out, loads) = dpo_outcome(&off);
    assert_eq!(loads, 1, "LoRA DPO loaded a second model");
    assert!(
        out.reference.is_none(),
        "LoRA DPO ran a reference pass without a cache configured"
    );
    // The same reference loaded explicitly from disk (a second model, cached pass).
    let base = format!("objective.reference={:?}", base());
    let cache = format!("train.reference_cache={:?}", tmp.path().join("cache"));
    let explicit = config(tmp.path(), ObjectiveKind::Dpo, "explicit", &[&base, &cache]);
    let (out, loads) = dpo_outcome(&explicit);
    assert_eq!(loads, 2, "the explicit reference is a second load");
    assert!(out.reference.unwrap().model_loaded);
    // A configured cache still works with the adapter off, and loads nothing more.
    let cached = config(tmp.path(), ObjectiveKind::Dpo, "cached", &[&cache]);
    let (out, loads) = dpo_outcome(&cached);
    let report = out.reference.expect("the cache is used when configured");
    assert_eq!(
        (loads, report.computed),
        (1, 0),
        "the base's entries were cached by the explicit run"
    );

    // Same losses, rewards and gradient norms at every step.
    let rows = |c: &RunConfig| -> Vec<serde_json::Value> {
        metrics(c)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    for other in [&explicit, &cached] {
        for (a, b) in rows(&off).iter().zip(rows(other)) {
            for key in ["loss", "grad_norm", "rewards/chosen", "rewards/rejected"] {
                let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
                assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{key}: {x} vs {y}");
            }
        }
    }
    // And the same adapters after two steps of Adam: the gradients were equal.
    let adapter = |c: &RunConfig| {
        read_adapter_tensors(&c.train.output_dir.join("final"), &Device::Cpu).unwrap()
    };
    let (a, b) = (adapter(&off), adapter(&explicit));
    for (name, t) in &a {
        let d = max_abs(&(t - &b[name]).unwrap());
        assert!(d < 1e-5, "{name}: differs by {d}");
    }
}

struct StopAt<'a>(u64, &'a AtomicBool);
impl Observer for StopAt<'_> {
    fn on_step(&mut self, m: &StepMetrics) {
        if m.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

fn bits(dir: &Path) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<_> = read_adapter_tensors(dir, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn interrupted_lora_run_with_dropout_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = [
        "adapter.dropout=0.1",
        "train.max_steps=4",
        "objective.kind=ift",
    ];
    let never = AtomicBool::new(false);
    let a = config(tmp.path(), ObjectiveKind::Sft, "a", &extra);
    run(&a, None, &mut Quiet, &never);
    let b = config(tmp.path(), ObjectiveKind::Sft, "b", &extra);
    let stop = AtomicBool::new(false);
    let end = run(&b, None, &mut StopAt(2, &stop), &stop).end;
    let RunEnd::Stopped { checkpoint } = end else {
        panic!("did not stop")
    };
    run(&b, Some(&checkpoint), &mut Quiet, &never);
    assert!(bits(&a.train.output_dir.join("final")) == bits(&b.train.output_dir.join("final")));
    // Dropout did something: without it the adapter ends elsewhere.
    let c = config(
        tmp.path(),
        ObjectiveKind::Sft,
        "c",
        &["train.max_steps=4", "objective.kind=ift"],
    );
    run(&c, None, &mut Quiet, &never);
    assert!(bits(&a.train.output_dir.join("final")) != bits(&c.train.output_dir.join("final")));
}

#[test]
fn model_adapter_continues_a_saved_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let peft = fixture("lora/llama_gqa_qv");
    let keys = [
        format!("model.adapter={peft:?}"),
        "adapter.target_modules=[\"q_proj\", \"v_proj\"]".to_string(),
        "train.lr=0".to_string(),
    ];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let c = config(tmp.path(), ObjectiveKind::Sft, "cont", &keys);
    run(&c, None, &mut Quiet, &AtomicBool::new(false));
    // With lr 0 the saved adapter is the one it started from, bit for bit.
    assert!(bits(&peft) == bits(&c.train.output_dir.join("final")));

    // A different rank is an error naming the key and the file.
    let mut wrong = keys.clone();
    wrong.push("adapter.r=8");
    let c = config(tmp.path(), ObjectiveKind::Sft, "wrong", &wrong);
    let e = train_from_config(&c, None, &AtomicBool::new(false), &mut Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter.r") && e.contains("adapter_config.json"),
        "{e}"
    );
    // attach_saved onto a model whose projections do not fit names the tensor.
    let mut qwen = LlamaForCausalLM::from_pretrained(
        &fixture("models/qwen2_tied"),
        &Trainable::None,
        &Device::Cpu,
    )
    .unwrap();
    let e = attach_saved(&mut qwen, &fixture("lora/llama_gqa_all"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("lora_"),
        "{e}"
    );
}

#[test]
fn adapter_config_errors_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\n",
        base(),
        golden::write_records(tmp.path(), ObjectiveKind::Sft)
    );
    let cases = [
        (
            "adapter.dropout=1.0",
            "adapter.kind=lora",
            "adapter.dropout",
        ),
        ("adapter.r=0", "adapter.kind=lora", "adapter.r"),
        (
            "adapter.target_modules=[\"lm_head\"]",
            "adapter.kind=lora",
            "adapter.target_modules",
        ),
        (
            "adapter.target_modules=[]",
            "adapter.kind=lora",
            "adapter.target_modules",
        ),
        ("adapter.kind=qlora", "adapter.r=4", "adapter.kind"),
        ("model.quantize=q8_0", "adapter.r=4", "model.quantize"),
        ("model.quantize=q3", "adapter.kind=lora", "model.quantize"),
        ("model.adapter=x", "adapter.r=4", "model.adapter"),
        (
            "model.freeze=[\"model.embed_tokens\"]",
            "adapter.kind=lora",
            "model.freeze",
        ),
        ("adapter.rank=4", "adapter.kind=lora", "adapter.rank"),
    ];
    for (a, b, key) in cases {
        let e = RunConfig::parse(&text, "run.toml", &[a.to_string(), b.to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("`{key}`")), "{a}: {e}");
    }
}
