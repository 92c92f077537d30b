//! End to end on the real LLaMA-Factory demo data (`../shared/data`): a tiny
//! model trained with each preference objective ranks the chosen answers of
//! its training pairs above the rejected ones within 20 steps.
//! Missing shared data is a failure that says where to get it, never a pass.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ift::config::RunConfig;
use ift::run::train_from_config;
use ift::train::Observer;

struct Quiet;
impl Observer for Quiet {}

fn shared(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/llamafactory")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: these tests need the project's shared data folder (../shared beside the repository, as CI lays it out)",
        path.display()
    );
    path
}

/// The first `n` records of a JSON-array file, written to `dir`.
fn subset(src: &Path, n: usize, dir: &Path) -> PathBuf {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(src).unwrap()).unwrap();
    let out = dir.join(src.file_name().unwrap());
    std::fs::write(&out, serde_json::to_string(&all[..n]).unwrap()).unwrap();
    out
}

/// The metrics rows of a finished run that carry `key`.
fn rows_with(out: &Path, key: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r.get(key).is_some())
        .collect()
}

/// 20 steps of 8 records, evaluated on the training file every 5 steps.
fn train(objective: &str, data: &Path, out: &Path, max_length: usize) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa");
    let text = format!(
        "[model]\npath = {model:?}\n[data]\ntrain = {data:?}\neval = {data:?}\nmax_length = {max_length}\n\
         [objective]\n{objective}\n\
         [train]\noutput_dir = {out:?}\nmax_steps = 20\nbatch_size = 8\nmicro_batch_size = 8\nlr = 3e-3\n\
         optimizer = \"adamw\"\nschedule = \"constant\"\nwarmup_ratio = 0.0\nmax_grad_norm = 1.0\neval_every = 5\n\
         reference_cache = {:?}\n",
        out.with_extension("cache")
    );
    let config = RunConfig::parse(&text, "e2e.toml", &[]).unwrap();
    train_from_config(&config, None, &AtomicBool::new(false), &mut Quiet).unwrap();
}

#[test]
fn pairwise_objectives_learn_to_rank_the_training_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let data = subset(&shared("dpo_en_demo.json"), 32, dir.path());
    for (name, objective) in [
        ("dpo", "kind = \"dpo\""),
        ("ipo", "kind = \"dpo\"\nloss_type = \"ipo\""),
        ("simpo", "kind = \"simpo\""),
        ("orpo", "kind = \"orpo\""),
        ("tdpo", "kind = \"tdpo\""),
    ] {
        let out = dir.path().join(name);
        train(objective, &data, &out, 96);
        let evals = rows_with(&out, "eval_rewards/accuracy");
        let acc: Vec<f64> = evals
            .iter()
            .map(|r| r["eval_rewards/accuracy"].as_f64().unwrap())
            .collect();
        eprintln!("{name}: eval reward accuracy on the training pairs {acc:?}");
        assert_eq!(acc.len(), 4, "{name}: evaluations at steps 5, 10, 15, 20");
        assert!(
            acc[3] > 0.5,
            "{name}: reward accuracy {acc:?} did not rise above 0.5"
        );
        let steps = rows_with(&out, "rewards/margin");
        assert_eq!(steps.len(), 20, "{name}: every step logs its rewards");
        // Step 1's figures are the initial policy's (computed before its update).
        let start = steps[0]["rewards/accuracy"].as_f64().unwrap();
        eprintln!("{name}: reward accuracy of step 1's batch (before any update) {start}");
        assert!(
            acc[3] > start.max(0.5),
            "{name}: accuracy {acc:?} did not rise from {start}"
        );
    }
}

#[test]
fn kto_learns_to_separate_desirable_from_undesirable_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = subset(&shared("kto_en_demo.json"), 32, dir.path());
    let out = dir.path().join("kto");
    // KTO's records are longer: at 96 tokens most answers would be cut whole.
    train("kind = \"kto\"", &data, &out, 320);
    let evals = rows_with(&out, "eval_rewards/margin");
    let margins: Vec<f64> = evals
        .iter()
        .map(|r| r["eval_rewards/margin"].as_f64().unwrap())
        .collect();
    eprintln!("kto: eval reward margin (desirable − undesirable) {margins:?}");
    assert_eq!(margins.len(), 4);
    assert!(
        margins[3] > 0.0,
        "kto: the desirable answers' reward must exceed the undesirable ones': {margins:?}"
    );
    let steps = rows_with(&out, "kl");
    assert_eq!(steps.len(), 20);
    // Step 1: the policy is its own reference, so every reward is 0.
    let start = steps[0]["rewards/margin"].as_f64().unwrap();
    assert!(
        start.abs() < 1e-3 && margins[3] > start,
        "kto: margin {margins:?} did not rise from {start}"
    );
}
