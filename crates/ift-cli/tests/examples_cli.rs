//! Every ready config under `examples/` runs as written (through the real
//! binary, from a working directory elsewhere: its paths are relative to the
//! config file), for two steps: the one-stage recipes first,
//! then the sequential ones on the SFT stage's `final/`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn train(example: &str, out: &Path, extra: &[String]) {
    let shared = root().join("../shared/data/llamafactory");
    assert!(
        shared.is_dir(),
        "{} is missing: the examples train on the shared demo data",
        shared.display()
    );
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        root().join("examples").join(example).display().to_string(),
        "--set".into(),
        "train.max_steps=2".into(),
        "--set".into(),
        format!(
            "train.output_dir={:?}",
            out.join(example.trim_end_matches(".toml"))
        ),
    ];
    for e in extra {
        args.extend(["--set".to_string(), e.clone()]);
    }
    let res = Command::new(env!("CARGO_BIN_EXE_ift"))
        .current_dir(out)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "examples/{example}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let finished = out
        .join(example.trim_end_matches(".toml"))
        .join("final/model.safetensors");
    assert!(finished.is_file(), "examples/{example}: no final model");
}

#[test]
fn every_example_config_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let listed: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    let (real, listed): (Vec<&String>, Vec<&String>) =
        listed.iter().partition(|n| n.starts_with("smollm2-"));
    let (sequential, single): (Vec<&String>, Vec<&String>) =
        listed.into_iter().partition(|n| n.starts_with("sft-then-"));
    assert!(
        single.len() >= 8 && sequential.len() >= 2,
        "{listed:?}",
        listed = single
    );
    assert!(real.len() >= 2, "{real:?}");
    for example in &single {
        train(example, tmp.path(), &[]);
    }
    // The real-model recipes, every key as written but on the tiny model (the
    // SmolLM2 run itself takes tens of minutes: scripts/finetune-smollm2.sh).
    let tiny = format!(
        "model.path={:?}",
        root().join("crates/ift/tests/fixtures/models/llama_gqa")
    );
    for example in &real {
        train(example, tmp.path(), std::slice::from_ref(&tiny));
    }
    let sft = format!("model.path={:?}", tmp.path().join("sft/final"));
    for example in &sequential {
        train(example, tmp.path(), std::slice::from_ref(&sft));
    }
}
