//! Issue 13: crash injection. A small run is killed with SIGKILL at many
//! points — between steps, and inside checkpoint and file writes through the
//! test-only `IFT_TEST_CRASH_AT` hook of `ift::atomic` (a directory complete
//! under its temporary name, the previous version moved aside, a file's
//! temporary complete) — and resumed each time with `keep_last = 2`, so that
//! pruning runs. The weights, the optimizer state and every file of `final/`
//! and of the checkpoints left must be bit-identical to an uninterrupted
//! run's, for SFT, IFT and every preference objective. A full disk
//! (RLIMIT_FSIZE) during a save must leave the last good checkpoint.
//!
//! `IFT_CRASH_KILLS=N` (see `scripts/crash-injection.sh`) adds N kills at
//! random steps (seeded by `IFT_CRASH_SEED`) to each objective's plan.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "crash_injection/setup.rs"]
mod setup;

use setup::{compare_runs, rows, Run};

/// Where and how one attempt is killed.
#[derive(Debug, Clone)]
enum Kill {
    /// SIGKILL once this many new metrics rows exist.
    AfterRows(usize),
    /// SIGKILL from inside the process at a crash point (`dir-filled:2`).
    At(&'static str),
    /// SIGTERM after this many new rows, and SIGKILL at a crash point inside
    /// the checkpoint it writes (which replaces the step's own checkpoint).
    TermThenAt(usize, &'static str),
    /// Two SIGTERMs back to back: the second exits at once.
    TwoSignals(usize),
}

/// The fixed plan every CI run goes through.
fn plan() -> Vec<Kill> {
    let mut plan = vec![
        Kill::At("file-written:1"),
        Kill::AfterRows(2),
        Kill::At("dir-filled:2"),
        Kill::TermThenAt(1, "dir-swapped:1"),
        Kill::At("dir-filled:1"),
        Kill::TwoSignals(1),
    ];
    let extra: usize = std::env::var("IFT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut seed: u64 = std::env::var("IFT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..extra {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        plan.push(match (seed >> 33) % 3 {
            0 => Kill::AfterRows(1 + (seed >> 40) as usize % 3),
            1 => Kill::At(
                ["dir-filled:1", "dir-filled:2", "file-written:2"][(seed >> 45) as usize % 3],
            ),
            _ => Kill::TermThenAt(1, "dir-swapped:1"),
        });
    }
    plan
}

fn ift(run: &Run, args: &[&str], crash_at: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ift"));
    cmd.args(args)
        .current_dir(&run.dir)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(point) = crash_at {
        cmd.env("IFT_TEST_CRASH_AT", point);
    }
    cmd.spawn().unwrap()
}

fn wait_rows(metrics: &Path, n: usize, child: &mut std::process::Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while rows(metrics) < n {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn signal(child: &std::process::Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

/// One attempt (a fresh start or a resume) under `kill`; its output.
fn attempt(run: &Run, kill: Option<&Kill>) -> Output {
    // `out` relative to the run's directory, as the config says, so that
    // the resolved configs in the checkpoints match the unbroken run's.
    let args: Vec<&str> = match setup::has_checkpoint(&run.out) {
        true => vec!["train", "--resume", "out"],
        false => vec!["train", "--config", "run.toml"],
    };
    let before = rows(&run.out.join("metrics.jsonl"));
    let crash_at = match kill {
        Some(Kill::At(p)) | Some(Kill::TermThenAt(_, p)) => Some(*p),
        _ => None,
    };
    let mut child = ift(run, &args, crash_at);
    let metrics = run.out.join("metrics.jsonl");
    let (rows, signals): (usize, &[&str]) = match kill {
        Some(Kill::AfterRows(n)) => (*n, &["-KILL"]),
        Some(Kill::TermThenAt(n, _)) => (*n, &["-TERM"]),
        Some(Kill::TwoSignals(n)) => (*n, &["-TERM", "-TERM"]),
        _ => (0, &[]),
    };
    if !signals.is_empty() && wait_rows(&metrics, before + rows, &mut child) {
        for sig in signals {
            signal(&child, sig);
        }
    }
    child.wait_with_output().unwrap()
}

/// Runs `run` to the end through the kill plan; returns the kills survived.
fn run_with_kills(run: &Run) -> usize {
    let plan = plan();
    for i in 0..plan.len() + 10 {
        let res = attempt(run, plan.get(i));
        let err = String::from_utf8_lossy(&res.stderr);
        let (code, sig) = (res.status.code(), res.status.signal());
        if code == Some(0) {
            return i;
        }
        // SIGKILL (from us or a crash point) for every kill but two signals,
        // which exit 130 (the second one) or 4 (the checkpoint was done first).
        let expected = match plan.get(i) {
            Some(Kill::TwoSignals(_)) => matches!(code, Some(130) | Some(4)),
            _ => sig == Some(9),
        };
        assert!(
            expected,
            "{}: attempt {i} ({:?}) ended {code:?}/{sig:?}: {err}",
            run.name,
            plan.get(i)
        );
    }
    panic!("{}: the run never finished", run.name)
}

#[test]
fn killed_runs_resume_bit_identical_for_every_objective() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for objective in ["sft", "ift", "dpo", "orpo", "simpo", "tdpo", "kto"] {
        let whole = Run::new(tmp.path(), objective, "whole");
        let res = attempt(&whole, None);
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let broken = Run::new(tmp.path(), objective, "broken");
        let kills = run_with_kills(&broken);
        assert!(kills >= 5, "{objective}: only {kills} kills happened");
        let files = compare_runs(&whole.out, &broken.out);
        report.push(format!(
            "{objective}: {kills} kills survived, {files} files identical"
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// A full disk (here a file-size limit, EFBIG) while a checkpoint is saved:
/// the error names the file, the last good checkpoint is intact, nothing is
/// left half-written, and a later resume finishes identically.
#[test]
fn a_full_disk_during_a_save_keeps_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let broken = Run::new(tmp.path(), "sft", "broken");
    // Dies just before publishing its second checkpoint: checkpoint-1 is the good one.
    let res = attempt(&broken, Some(&Kill::At("dir-filled:2")));
    assert_eq!(res.status.signal(), Some(9));
    let good = broken.out.join("checkpoint-1");
    let snapshot = setup::files(&good);
    // 64 KiB per file: enough for configs and metrics, not for the weights.
    let script = format!(
        "trap '' XFSZ; ulimit -f 128; exec {:?} train --resume {:?}",
        env!("CARGO_BIN_EXE_ift"),
        "out"
    );
    let res = Command::new("sh")
        .args(["-c", &script])
        .current_dir(&broken.dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(3), "{err}");
    let line = err
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("");
    let ck2 = broken.out.join("checkpoint-2");
    let out = broken.out.display();
    assert!(
        line.starts_with(&format!(
            "error: {out}/checkpoint-2 not written: cannot write {out}/.checkpoint-2.tmp-"
        )) && line.contains("/model.safetensors: File too large (os error 27)")
            && line.ends_with(&format!(
                "; the last good checkpoint, {out}/checkpoint-1, is intact"
            )),
        "{line}"
    );
    assert_eq!(
        setup::files(&good),
        snapshot,
        "the last good checkpoint changed"
    );
    assert!(!ck2.exists());
    let leftovers: Vec<PathBuf> = std::fs::read_dir(&broken.out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");

    let res = attempt(&broken, None);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let whole = Run::new(tmp.path(), "sft", "whole");
    assert!(attempt(&whole, None).status.success());
    compare_runs(&whole.out, &broken.out);
}
