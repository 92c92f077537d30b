//! Issue 27: a stop (SIGINT/SIGTERM, `ift::interrupt`) is honoured inside
//! the reference pass and inside evaluations, and loses nothing: the
//! reference cache keeps what was computed, and an interrupted or completed
//! opening evaluation is written exactly once across a resume.
//!
//! The stop request is process-wide, so this binary holds one test that
//! runs its cases one after another.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use ift::data::EncodedExample;
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::Objective;
use ift::reference::prepare_reference_logps;
use ift::train::{train, Observer, OptimizerKind, Run, RunEnd, TrainConfig, TrainData};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa")
}

fn load(dir: &Path) -> LlamaForCausalLM {
    LlamaForCausalLM::from_pretrained(dir, &Trainable::All, &Device::Cpu).unwrap()
}

/// Deterministic sequences of different lengths, the second half trained.
fn examples(n: usize, salt: u32) -> Vec<EncodedExample> {
    (0..n as u32)
        .map(|i| {
            let len = 5 + (i * 7 + salt) as usize % 9;
            EncodedExample {
                input_ids: (0..len as u32)
                    .map(|j| (i * 31 + j * 17 + salt) % 380)
                    .collect(),
                loss_mask: (0..len).map(|j| j >= len / 2).collect(),
            }
        })
        .collect()
}

#[test]
fn stops_inside_long_passes_lose_nothing() {
    reference_pass_keeps_what_it_computed();
    opening_evaluation_is_written_once();
}

fn reference_pass_keeps_what_it_computed() {
    let seqs = examples(30, 1);
    let model = load(&model_dir());
    let score_all = |dir: &Path, progress: &mut dyn FnMut(usize, usize)| {
        let mut load = || Ok(model.detached());
        prepare_reference_logps(&seqs, dir, "fp", &mut load, 2, &Device::Cpu, progress)
    };
    let whole = tempfile::tempdir().unwrap();
    let (all, _) = score_all(whole.path(), &mut |_, _| {}).unwrap();

    let cache = tempfile::tempdir().unwrap();
    // The stop arrives after the fifth batch.
    let err = score_all(cache.path(), &mut |done, _| {
        if done >= 10 {
            ift::interrupt::request();
        }
    })
    .unwrap_err();
    ift::interrupt::clear();
    assert!(matches!(err, ift::Error::Interrupted(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("10 of 30") && msg.contains("fp.safetensors"),
        "{msg}"
    );
    // The same call again computes only the rest, to the same values.
    let (resumed, report) = score_all(cache.path(), &mut |_, _| {}).unwrap();
    assert_eq!((report.cached, report.computed), (10, 20));
    for s in &seqs {
        assert_eq!(
            resumed.get(s).unwrap().to_bits(),
            all.get(s).unwrap().to_bits()
        );
    }
}

/// Asks for a stop when the opening evaluation starts or when it is done.
struct StopAtOpening {
    before_eval: bool,
}

impl Observer for StopAtOpening {
    fn on_start(&mut self, _: u64, _: u64) {
        if self.before_eval {
            ift::interrupt::request();
        }
    }
    fn on_eval(&mut self, step: u64, _: &ift::eval::EvalLoss) {
        if step == 0 && !self.before_eval {
            ift::interrupt::request();
        }
    }
}

struct Quiet;
impl Observer for Quiet {}

fn opening_evaluation_is_written_once() {
    for before_eval in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let cfg = TrainConfig {
            output_dir: out.clone(),
            max_steps: 4,
            batch_size: 4,
            micro_batch_size: 2,
            lr: 1e-3,
            optimizer: OptimizerKind::AdamW,
            save_every: 2,
            eval_every: 2,
            eval_at_start: true,
            ..TrainConfig::default()
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
        let stop = AtomicBool::new(false);
        let end = train(
            &load(&model_dir()),
            &run,
            None,
            &stop,
            &mut StopAtOpening { before_eval },
        )
        .unwrap();
        ift::interrupt::clear();
        let RunEnd::Stopped { checkpoint } = end else {
            panic!("not stopped: {end:?}")
        };
        assert_eq!(checkpoint, out.join("checkpoint-0"));
        let resumed = load(&checkpoint);
        train(&resumed, &run, Some(&checkpoint), &stop, &mut Quiet).unwrap();
        let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let eval_steps: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r.get("eval_loss").is_some())
            .map(|r| r["step"].as_u64().unwrap())
            .collect();
        assert_eq!(eval_steps, [0, 2, 4], "before_eval {before_eval}: {text}");
    }
}
