//! The training loop's invariants: gradient accumulation does not change the
//! step, an interrupted and resumed run ends bit-identical to an unbroken
//! one, and non-finite steps are skipped then stop the run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use ift::data::EncodedExample;
use ift::loss::Normalize;
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::{Objective, SftParams};
use ift::train::{
    forward_backward, latest_checkpoint, train, Observer, OptimizerKind, Run, RunEnd, StepMetrics,
    TrainConfig, TrainData,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa")
}

fn load(dir: &Path) -> LlamaForCausalLM {
    LlamaForCausalLM::from_pretrained(dir, &Trainable::All, &Device::Cpu).unwrap()
}

/// Sequences of different lengths over the tokenizer's 380 ordinary ids,
/// the answer (second half) trained.
fn examples(n: usize, seed: u64) -> Vec<EncodedExample> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(5..14);
            let input_ids = (0..len).map(|_| rng.random_range(0..380)).collect();
            let loss_mask = (0..len).map(|i| i >= len / 2).collect();
            EncodedExample {
                input_ids,
                loss_mask,
            }
        })
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn accumulation_1x8_equals_8x1() {
    let model = load(&model_dir());
    let data = examples(8, 1);
    let batch: Vec<&EncodedExample> = data.iter().collect();
    let engines = [ift::train::Engine::Explicit, ift::train::Engine::Graph];
    for (normalize, engine) in [Normalize::Sequence, Normalize::Token]
        .into_iter()
        .flat_map(|n| engines.map(|e| (n, e)))
    {
        let objective = Objective::Sft(SftParams { normalize });
        let ctx = ift::train::StepContext { step: 0, seed: 0 };
        let whole =
            forward_backward(&model, &batch, 8, &objective, ctx, &Device::Cpu, engine).unwrap();
        let split =
            forward_backward(&model, &batch, 1, &objective, ctx, &Device::Cpu, engine).unwrap();
        assert!(
            (whole.loss - split.loss).abs() < 1e-5 * whole.loss.abs(),
            "{normalize:?} {engine:?}: {} vs {}",
            whole.loss,
            split.loss
        );
        for (name, var) in model.parameters().vars() {
            let (a, b) = (
                values(whole.grads.get(var).unwrap()),
                values(split.grads.get(var).unwrap()),
            );
            let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-4 * scale + 1e-7,
                "{normalize:?} {name}: differs by {worst} (scale {scale})"
            );
        }
    }
}

/// Sets the stop flag once `at` steps are done (what Ctrl-C does).
struct StopAt<'a>(u64, &'a AtomicBool);

impl Observer for StopAt<'_> {
    fn on_step(&mut self, m: &StepMetrics) {
        if m.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

struct Quiet;
impl Observer for Quiet {}

fn config(out: &Path) -> TrainConfig {
    TrainConfig {
        output_dir: out.to_path_buf(),
        max_steps: 6,
        batch_size: 4,
        micro_batch_size: 2,
        lr: 1e-3,
        optimizer: OptimizerKind::AdamW,
        weight_decay: 0.01,
        save_every: 2,
        eval_every: 3,
        ..TrainConfig::default()
    }
}

fn run_in(
    out: &Path,
    cfg: &TrainConfig,
    model: &LlamaForCausalLM,
    resume: Option<&Path>,
    obs: &mut dyn Observer,
    stop: &AtomicBool,
) -> RunEnd {
    let (train_set, eval_set) = (
        TrainData::Sequences(examples(10, 2)),
        TrainData::Sequences(examples(3, 3)),
    );
    let objective = Objective::default();
    let run = Run {
        train: &train_set,
        eval: &eval_set,
        config: cfg,
        objective: &objective,
        reference: Default::default(),
        config_toml: "",
        companions: &model_dir(),
        device: &Device::Cpu,
        benchmarks: None,
        contract: None,
    };
    std::fs::create_dir_all(out).unwrap();
    train(model, &run, resume, stop, obs).unwrap()
}

fn final_weights(out: &Path) -> Vec<(String, Vec<u32>)> {
    let model =
        LlamaForCausalLM::from_pretrained(&out.join("final"), &Trainable::None, &Device::Cpu)
            .unwrap();
    model
        .parameters()
        .named()
        .iter()
        .map(|(n, t)| (n.clone(), values(t).iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// Issue 13: exact resume for every optimizer and every schedule (with
/// warm-up), stopped mid-warm-up and on an odd step.
#[test]
fn interrupted_and_resumed_run_is_bit_identical() {
    use ift::train::ScheduleKind;
    for optimizer in [
        OptimizerKind::AdamW,
        OptimizerKind::RmsProp,
        OptimizerKind::Sgd,
    ] {
        for schedule in [
            ScheduleKind::Constant,
            ScheduleKind::Linear,
            ScheduleKind::Cosine,
        ] {
            let what = format!("{optimizer:?} {schedule:?}");
            let tmp = tempfile::tempdir().unwrap();
            let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
            let cfg = |out: &Path| TrainConfig {
                optimizer,
                schedule,
                warmup_steps: 2,
                ..config(out)
            };
            resumed_equals_unbroken(&what, &a, &b, &cfg(&a), &cfg(&b));
        }
    }
}

fn resumed_equals_unbroken(
    what: &str,
    a: &Path,
    b: &Path,
    cfg_a: &TrainConfig,
    cfg_b: &TrainConfig,
) {
    let never = AtomicBool::new(false);
    run_in(a, cfg_a, &load(&model_dir()), None, &mut Quiet, &never);

    let stop = AtomicBool::new(false);
    let end = run_in(
        b,
        cfg_b,
        &load(&model_dir()),
        None,
        &mut StopAt(3, &stop),
        &stop,
    );
    assert_eq!(
        end,
        RunEnd::Stopped {
            checkpoint: b.join("checkpoint-3")
        },
        "{what}"
    );
    let ck = latest_checkpoint(b).unwrap().unwrap();
    let resumed = load(&ck);
    run_in(b, cfg_b, &resumed, Some(&ck), &mut Quiet, &never);

    assert!(
        final_weights(a) == final_weights(b),
        "{what}: resumed weights differ from the unbroken run"
    );
    let rows = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let strip = |s: String| {
        s.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for k in ["tokens_per_s", "elapsed_s"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(rows(a)),
        strip(rows(b)),
        "{what}: metrics differ after resume"
    );
}

/// Issue 13: when the last step is skipped, the final evaluation still runs
/// and `final/` is written.
#[test]
fn a_skipped_last_step_still_gets_its_final_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        lr: 1e30,
        max_steps: 3,
        save_every: 0,
        eval_every: 0,
        max_bad_steps: 10,
        schedule: ift::train::ScheduleKind::Constant,
        warmup_ratio: 0.0,
        optimizer: OptimizerKind::Sgd,
        ..config(&out)
    };
    let (train_set, eval_set) = (
        TrainData::Sequences(examples(10, 2)),
        TrainData::Sequences(examples(3, 3)),
    );
    let objective = Objective::default();
    let run = Run {
        train: &train_set,
        eval: &eval_set,
        config: &cfg,
        objective: &objective,
        reference: Default::default(),
        config_toml: "",
        companions: &model_dir(),
        device: &Device::Cpu,
        benchmarks: None,
        contract: None,
    };
    std::fs::create_dir_all(&out).unwrap();
    let model = load(&model_dir());
    let err = train(&model, &run, None, &AtomicBool::new(false), &mut Quiet).unwrap_err();
    // Issue 27: a run that ends in a non-finite streak fails (it used to end
    // "done"), after its final evaluation.
    let err = err.to_string();
    assert!(
        err.contains("the run ended during a streak of 2 non-finite steps"),
        "{err}"
    );
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r.get("eval_loss").is_some())
        .collect();
    assert_eq!(evals.len(), 1, "{text}");
    assert_eq!(evals[0]["step"], 3);
    assert!(!out.join("final").exists());
}

/// `train.eval_at_start`: a `step: 0` row scored on the untrained model (the
/// same loss `evaluate_loss` gives it), then the usual cadence; a resumed
/// run does not repeat it.
#[test]
fn eval_at_start_scores_the_untrained_model_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        eval_at_start: true,
        ..config(&out)
    };
    let model = load(&model_dir());
    let before = ift::eval::evaluate_loss(&model, &examples(3, 3), 8, &Device::Cpu).unwrap();
    let stop = AtomicBool::new(false);
    run_in(&out, &cfg, &model, None, &mut StopAt(4, &stop), &stop);
    let resumed = load(&out.join("checkpoint-4"));
    run_in(
        &out,
        &cfg,
        &resumed,
        Some(&out.join("checkpoint-4")),
        &mut Quiet,
        &AtomicBool::new(false),
    );
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let evals: Vec<(u64, f64)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| Some((r["step"].as_u64()?, r.get("eval_loss")?.as_f64()?)))
        .collect();
    assert_eq!(
        evals.iter().map(|e| e.0).collect::<Vec<_>>(),
        [0, 3, 6],
        "{text}"
    );
    assert!(
        (evals[0].1 - before.eval_loss).abs() < 1e-5,
        "{evals:?} vs {before:?}"
    );
    // Random tokens: the held-out loss moves (here up), it need not fall.
    assert!(evals[1].1 != evals[0].1, "{evals:?}");
}

#[test]
fn non_finite_steps_are_skipped_then_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // A learning rate this large sends the weights to infinity at once.
    let cfg = TrainConfig {
        lr: 1e30,
        max_steps: 20,
        save_every: 0,
        max_bad_steps: 3,
        schedule: ift::train::ScheduleKind::Constant,
        warmup_ratio: 0.0,
        optimizer: OptimizerKind::Sgd,
        ..config(&out)
    };
    let train_set = TrainData::Sequences(examples(10, 2));
    let objective = Objective::default();
    let run = Run {
        train: &train_set,
        eval: &TrainData::Sequences(Vec::new()),
        config: &cfg,
        objective: &objective,
        reference: Default::default(),
        config_toml: "",
        companions: &model_dir(),
        device: &Device::Cpu,
        benchmarks: None,
        contract: None,
    };
    std::fs::create_dir_all(&out).unwrap();
    let run_it = |run: &Run<'_>| {
        train(
            &load(&model_dir()),
            run,
            None,
            &AtomicBool::new(false),
            &mut Quiet,
        )
        .unwrap_err()
        .to_string()
    };
    // Step 1 is finite and sends the weights to infinity; steps 2-4 are
    // skipped, and the third in a row stops the run.
    let err = run_it(&run);
    assert!(err.contains("3 non-finite steps in a row"), "{err}");
    assert!(err.contains("No checkpoint was written"), "{err}");
    // Issue 27: no checkpoint is written from weights that are not finite,
    // nor during a non-finite streak (issue 13's cadence kept writing them,
    // and pruning then removed the good ones).
    let cfg = TrainConfig {
        save_every: 1,
        ..cfg.clone()
    };
    let err = run_it(&Run {
        config: &cfg,
        ..run
    });
    // Step 1's weights are finite and score its first micro-batch: its
    // checkpoint is written; the streak after it writes none.
    assert!(err.contains("3 non-finite steps in a row"), "{err}");
    let ck = out.join("checkpoint-1");
    assert!(
        err.contains(&format!("{}, is intact (verified)", ck.display())),
        "{err}"
    );
    assert_eq!(latest_checkpoint(&out).unwrap(), Some(ck.clone()));
    let m = LlamaForCausalLM::from_pretrained(&ck, &Trainable::None, &Device::Cpu).unwrap();
    assert!(m
        .parameters()
        .named()
        .iter()
        .all(|(_, t)| values(t).iter().all(|x| x.is_finite())));
}
