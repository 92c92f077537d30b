//! `ift train` end to end through the real binary: SFT on the real Alpaca
//! demo file with a tiny model, then the checkpoint scored back; and the
//! failures that must happen before any training starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap()
}

fn config(out: &Path) -> String {
    let model = root().join("crates/ift/tests/fixtures/models/llama_gqa");
    let data = root().join("../shared/data/llamafactory/alpaca_en_demo.json");
    format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\nmax_length = 96\n[train]\noutput_dir = {:?}\nmax_steps = 30\nbatch_size = 8\nmicro_batch_size = 4\nlr = 3e-3\noptimizer = \"adamw\"\nwarmup_steps = 3\nsave_every = 10\n",
        model, data, out
    )
}

/// The real Alpaca demo file must be beside the repository (CI has it); a
/// missing file fails the test with where it is expected, never passes.
fn require_alpaca() {
    let path = root().join("../shared/data/llamafactory/alpaca_en_demo.json");
    assert!(
        path.is_file(),
        "{} is missing: these tests need the project's shared data folder (../shared beside the repository)",
        path.display()
    );
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sft_on_alpaca_learns_and_the_checkpoint_scores_back() {
    require_alpaca();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("sft.toml");
    std::fs::write(&cfg, config(&out)).unwrap();
    let res = ift(&["train", "--config", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains("999 records"),
        "the load summary is reported: {stderr}"
    );

    let metrics = rows(&out.join("metrics.jsonl"));
    assert_eq!(metrics.len(), 30);
    for (i, row) in metrics.iter().enumerate() {
        assert_eq!(row["step"], i as u64 + 1);
        for key in [
            "loss",
            "grad_norm",
            "lr",
            "tokens",
            "tokens_per_s",
            "elapsed_s",
        ] {
            assert!(
                row[key].is_number(),
                "step {}: {key} missing in {row}",
                i + 1
            );
        }
    }
    let mean = |r: &[serde_json::Value]| {
        r.iter().map(|v| v["loss"].as_f64().unwrap()).sum::<f64>() / r.len() as f64
    };
    let (first, last) = (mean(&metrics[..5]), mean(&metrics[25..]));
    assert!(last < 0.9 * first, "loss did not fall: {first} -> {last}");
    assert!(out.join("config.toml").is_file());
    assert!(out.join("checkpoint-20/trainer_state.json").is_file());

    // final/ is an HF directory: it scores, and a re-saved copy scores identically.
    let final_dir = out.join("final");
    let copy = tmp.path().join("copy");
    assert!(ift(&[
        "convert",
        "--model",
        final_dir.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap()
    ])
    .status
    .success());
    let data = tmp.path().join("texts.jsonl");
    std::fs::write(&data, "{\"text\": \"Give three tips for staying healthy.\"}\n{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue.\"}\n").unwrap();
    let score = |model: &Path, name: &str| {
        let o = tmp.path().join(name);
        let r = ift(&[
            "score",
            "--model",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            o.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        std::fs::read_to_string(o).unwrap()
    };
    let (a, b) = (score(&final_dir, "a.jsonl"), score(&copy, "b.jsonl"));
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 2);

    // A second run into the same directory is refused: earlier output is kept.
    let again = ift(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));
    assert_eq!(rows(&out.join("metrics.jsonl")).len(), 30);
}

#[test]
fn bad_key_and_unwritable_output_fail_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("sft.toml");
    std::fs::write(&cfg, config(&out)).unwrap();

    let res = ift(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        "train.learning_rate=1e-4",
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(
            "error: --set train.learning_rate=1e-4: `train.learning_rate`: unknown field `learning_rate`"
        ),
        "{err}"
    );
    assert!(!out.exists(), "nothing may be written for a bad config");

    // An output directory that cannot be created (its parent is a file).
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let bad_out = format!("train.output_dir=\"{}\"", blocker.join("run").display());
    let res = ift(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        &bad_out,
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&format!("cannot write {}", blocker.join("run").display())),
        "{err}"
    );
    assert_eq!(
        res.status.code(),
        Some(3),
        "an output that cannot be written: {err}"
    );
    assert!(
        !err.contains("records"),
        "data must not be loaded before the output check: {err}"
    );
}

/// Runs `ift train ARGS` and sends `signal` once `rows` metrics rows exist.
fn interrupt(args: &[&str], metrics: &Path, rows_before: usize, signal: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ift"))
        .arg("train")
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(metrics).map_or(0, |t| t.lines().count()) < rows_before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "training did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    child.wait_with_output().unwrap()
}

/// SIGTERM (what schedulers send) and SIGINT (Ctrl-C) both write a
/// checkpoint and exit with code 4; `--resume` then finishes the run.
#[test]
fn sigterm_and_ctrl_c_checkpoint_and_resume_finishes() {
    require_alpaca();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("sft.toml");
    std::fs::write(
        &cfg,
        config(&out).replace("max_steps = 30", "max_steps = 400"),
    )
    .unwrap();
    let metrics = out.join("metrics.jsonl");
    let out_arg = out.to_str().unwrap();
    for (signal, args) in [
        ("-TERM", ["--config", cfg.to_str().unwrap()]),
        ("-INT", ["--resume", out_arg]),
    ] {
        let before = match metrics.exists() {
            true => rows(&metrics).len(),
            false => 0,
        };
        let res = interrupt(&args, &metrics, before, signal);
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(res.status.code(), Some(4), "{signal}: {err}");
        assert!(err.contains("stopped: checkpoint in"), "{err}");
        let done = rows(&metrics).len() as u64;
        assert!(done < 400, "the run must stop early");
        assert!(out
            .join(format!("checkpoint-{done}/trainer_state.json"))
            .is_file());
    }

    let res = ift(&["train", "--resume", out_arg]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        rows(&metrics)
            .iter()
            .filter(|r| r.get("loss").is_some())
            .count(),
        400
    );
    assert!(out.join("final/model.safetensors").is_file());
}
