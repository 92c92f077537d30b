//! `train.eval_tasks`: benchmark figures land in `metrics.jsonl` on the
//! evaluation cadence as `eval_<task>_<metric>`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use ift::data::EncodedExample;
use ift::eval::tasks::{Benchmarks, EvalOptions};
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::Objective;
use ift::tokenizer::HfTokenizer;
use ift::train::{train, Observer, OptimizerKind, Run, TrainConfig, TrainData};

struct Quiet;
impl Observer for Quiet {}

#[test]
fn benchmarks_run_on_the_eval_cadence() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa");
    let tmp = tempfile::tempdir().unwrap();
    let task = tmp.path().join("quiz.jsonl");
    std::fs::write(
        &task,
        "{\"query\": \"Sky is\", \"choices\": [\"blue\", \"green\"], \"gold\": 0}\n\
         {\"query\": \"Grass is\", \"choices\": [\"blue\", \"green\"], \"gold\": 1}\n",
    )
    .unwrap();
    let tok = HfTokenizer::from_dir(&dir).unwrap();
    let specs = vec![task.display().to_string()];
    let bench = Benchmarks::load(&specs, &tok, None, EvalOptions::default()).unwrap();
    let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::All, &Device::Cpu).unwrap();
    let out = tmp.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    let cfg = TrainConfig {
        output_dir: out.clone(),
        max_steps: 4,
        batch_size: 2,
        micro_batch_size: 2,
        lr: 1e-3,
        optimizer: OptimizerKind::AdamW,
        eval_every: 2,
        ..TrainConfig::default()
    };
    let ids: Vec<u32> = (0..12).map(|i| 10 + i).collect();
    let train_set: Vec<EncodedExample> = (0..4)
        .map(|_| EncodedExample {
            input_ids: ids.clone(),
            loss_mask: (0..12).map(|i| i > 3).collect(),
        })
        .collect();
    let objective = Objective::default();
    let train_set = TrainData::Sequences(train_set);
    let run = Run {
        train: &train_set,
        eval: &TrainData::Sequences(Vec::new()),
        config: &cfg,
        objective: &objective,
        reference: Default::default(),
        config_toml: "",
        companions: &dir,
        device: &Device::Cpu,
        benchmarks: Some(&bench),
        contract: None,
    };
    train(&model, &run, None, &AtomicBool::new(false), &mut Quiet).unwrap();
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get("eval_quiz_acc").is_some())
        .collect();
    let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![2, 4]);
    for r in &rows {
        let acc = r["eval_quiz_acc"].as_f64().unwrap();
        assert!([0.0, 0.5, 1.0].contains(&acc), "{r}");
        assert!(r["eval_quiz_acc_norm"].is_f64());
    }
}
