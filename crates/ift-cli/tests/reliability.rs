//! Issue 27: never lose a user's work. Each test reproduces a way the probe
//! found to lose or corrupt work, through the real binary: outputs that
//! replace what is not theirs, two writers in one run directory, a run that
//! goes bad pruning its good checkpoints, damaged checkpoints trusted on
//! resume, and a full disk (a size-limited tmpfs in a private mount
//! namespace).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> PathBuf {
    root().join("crates/ift/tests/fixtures/models/llama_gqa")
}

fn ift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The real Alpaca demo file (a missing file fails the test, never passes).
fn alpaca() -> PathBuf {
    let path = root().join("../shared/data/llamafactory/alpaca_en_demo.json");
    assert!(
        path.is_file(),
        "{} is missing: these tests need the shared data folder",
        path.display()
    );
    path
}

/// `T` of the issue: a tiny model, `save_every = 2`, `keep_last = 2`.
fn write_config(dir: &Path, out: &Path, steps: u64) -> PathBuf {
    let cfg = dir.join("base.toml");
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {:?}\nmax_length = 64\n[train]\noutput_dir = {:?}\nmax_steps = {steps}\nbatch_size = 2\nmicro_batch_size = 2\nlr = 1e-3\nsave_every = 2\nkeep_last = 2\n",
        model(),
        alpaca(),
        out
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn train(cfg: &Path, sets: &[&str]) -> Output {
    let mut args = vec!["train", "--config", cfg.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    ift(&args)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn convert_and_merge_refuse_to_replace_what_they_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &run, 4);
    let res = train(&cfg, &[]);
    assert!(res.status.success(), "{}", stderr(&res));
    let before = listing(&run);
    assert!(before.contains(&"checkpoint-2".to_string()), "{before:?}");
    let final_dir = run.join("final");

    // --out the run itself: the run, its checkpoints and metrics stay.
    let res = ift(&[
        "convert",
        "--model",
        final_dir.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("contains the input"),
        "{}",
        stderr(&res)
    );
    assert_eq!(listing(&run), before);

    // --out one level above the input.
    let res = ift(&[
        "convert",
        "--model",
        final_dir.to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(final_dir.join("config.json").is_file());

    // A directory someone else filled is named with what it holds.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
    let res = ift(&[
        "convert",
        "--model",
        final_dir.to_str().unwrap(),
        "--out",
        theirs.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    let msg = stderr(&res);
    assert!(
        msg.contains("was not made by an ift command") && msg.contains("notes.txt"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes.txt")).unwrap(),
        "mine"
    );

    // What convert made, convert may replace.
    let copy = tmp.path().join("copy");
    for _ in 0..2 {
        let res = ift(&[
            "convert",
            "--model",
            final_dir.to_str().unwrap(),
            "--out",
            copy.to_str().unwrap(),
        ]);
        assert!(res.status.success(), "{}", stderr(&res));
    }
    assert!(copy.join("config.json").is_file());

    // merge: --out the base model directory is refused before anything loads.
    let res = ift(&[
        "merge",
        "--model",
        copy.to_str().unwrap(),
        "--adapter",
        final_dir.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(stderr(&res).contains("is the input"), "{}", stderr(&res));
    assert!(copy.join("config.json").is_file());
}

#[test]
fn a_second_process_cannot_write_into_a_running_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &run, 100_000);
    let mut first = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(["train", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a checkpoint (any: at this speed `keep_last` prunes each one
    // within milliseconds, so polling for a particular one can miss it).
    let started = Instant::now();
    let has_checkpoint = || {
        std::fs::read_dir(&run).is_ok_and(|d| {
            d.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("checkpoint-")
                    && e.path().join("manifest.json").is_file()
            })
        })
    };
    while !has_checkpoint() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = first.id();
    let second = train(&cfg, &[]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(
        msg.contains("is in use by another process") && msg.contains(&format!("pid {pid}")),
        "{msg}"
    );
    let resumed = ift(&["train", "--resume", run.to_str().unwrap()]);
    assert_eq!(resumed.status.code(), Some(2), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(&format!("pid {pid}")),
        "{}",
        stderr(&resumed)
    );
    // SIGKILL releases the lock with the process: the run resumes.
    first.kill().unwrap();
    first.wait().unwrap();
    let resumed = ift(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--set",
        "train.max_steps=1",
        "--force",
    ]);
    // max_steps below the checkpoint's step is refused by the trainer (exit 1), but
    // only after the lock was taken and the checkpoint read: the lock is free.
    assert!(
        !stderr(&resumed).contains("is in use"),
        "{}",
        stderr(&resumed)
    );
}

/// The weights of a checkpoint (or final/) directory, all finite.
fn weights_finite(dir: &Path) -> bool {
    let mut ok = true;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (_, t) in st.tensors() {
            if t.dtype() != safetensors::Dtype::F32 {
                continue; // the optimiser's step counters
            }
            ok &= t
                .data()
                .chunks_exact(4)
                .all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite());
        }
    }
    ok
}

#[test]
fn a_run_that_goes_bad_keeps_its_good_checkpoints_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &run, 20);
    // Good for 4 steps, then a learning rate no model survives.
    let res = train(&cfg, &["train.max_steps=4"]);
    assert!(res.status.success(), "{}", stderr(&res));
    std::fs::remove_dir_all(run.join("final")).unwrap();
    let res = ift(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--force",
        "--set",
        "train.lr=1e10",
        "--set",
        "train.max_steps=20",
    ]);
    assert_eq!(res.status.code(), Some(1), "{}", stderr(&res));
    let msg = stderr(&res);
    assert!(msg.contains("is intact (verified)"), "{msg}");
    assert!(!run.join("final").exists(), "a bad run writes no final/");
    // Every checkpoint left holds finite weights, and the one named exists.
    let named = msg
        .split("ast good checkpoint, ")
        .nth(1)
        .and_then(|s| s.split(", is intact").next())
        .expect("names the last good checkpoint");
    assert!(Path::new(named).join("manifest.json").is_file(), "{named}");
    for name in listing(&run) {
        if name.starts_with("checkpoint-") {
            assert!(weights_finite(&run.join(&name)), "{name} holds NaN or inf");
        }
    }
}

#[test]
fn a_run_ending_in_non_finite_steps_fails_however_few_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let cfg = write_config(tmp.path(), &run, 3);
    // One finite step blows the weights up; the next steps are non-finite,
    // fewer than max_bad_steps: the run used to end "done".
    let res = train(&cfg, &["train.lr=1e30", "train.max_bad_steps=10"]);
    assert_eq!(res.status.code(), Some(1), "{}", stderr(&res));
    assert!(!run.join("final").exists());
    let msg = stderr(&res);
    assert!(msg.contains("non-finite"), "{msg}");

    // Weights that blow up in the last step: the loss that steered it was finite.
    let run2 = tmp.path().join("run2");
    // (step 1 warms up at lr 0; step 2 takes the whole rate)
    let cfg2 = write_config(tmp.path(), &run2, 2);
    let res = train(&cfg2, &["train.lr=1e30"]);
    assert_eq!(res.status.code(), Some(1), "{}", stderr(&res));
    assert!(!run2.join("final").exists());
}

/// A finished 6-step run (checkpoints 2 and 4 kept) to resume, extended.
fn finished_run(tmp: &Path) -> PathBuf {
    let run = tmp.join("run");
    let cfg = write_config(tmp, &run, 6);
    let res = train(&cfg, &[]);
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(run.join("checkpoint-4").is_dir() && run.join("checkpoint-2").is_dir());
    std::fs::remove_dir_all(run.join("final")).unwrap();
    run
}

fn resume(run: &Path) -> Output {
    ift(&["train", "--resume", run.to_str().unwrap()])
}

#[test]
fn resume_verifies_checkpoints_and_falls_back_to_the_newest_intact_one() {
    let tmp = tempfile::tempdir().unwrap();
    // NaN bytes in the newest optimizer state: passed over, named.
    let run = finished_run(tmp.path());
    let opt = run.join("checkpoint-4/optimizer.safetensors");
    let mut bytes = std::fs::read(&opt).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&opt, bytes).unwrap();
    let res = resume(&run);
    assert!(res.status.success(), "{}", stderr(&res));
    let msg = stderr(&res);
    assert!(
        msg.contains("checkpoint-4/optimizer.safetensors") && msg.contains("passed over"),
        "{msg}"
    );
    assert!(
        msg.contains("checkpoint-2, the newest intact checkpoint"),
        "{msg}"
    );
    assert!(weights_finite(&run.join("final")));

    // An edited trainer_state.json: refused by the manifest, named.
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    let state = run.join("checkpoint-4/trainer_state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, text.replace("\"step\": 4", "\"step\": 3")).unwrap();
    let res = resume(&run);
    assert!(res.status.success(), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("checkpoint-4/trainer_state.json"),
        "{}",
        stderr(&res)
    );

    // No optimizer state anywhere: refused, each file named.
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    for c in ["checkpoint-2", "checkpoint-4"] {
        std::fs::remove_file(run.join(c).join("optimizer.safetensors")).unwrap();
    }
    let res = resume(&run);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    let msg = stderr(&res);
    for c in ["checkpoint-2", "checkpoint-4"] {
        assert!(
            msg.contains(&format!("{c}/optimizer.safetensors: missing")),
            "{msg}"
        );
    }

    // A checkpoint without a manifest (an earlier version's) is still
    // checked for NaN in its optimizer state, naming the tensor.
    let tmp = tempfile::tempdir().unwrap();
    let run = finished_run(tmp.path());
    std::fs::remove_dir_all(run.join("checkpoint-2")).unwrap();
    std::fs::remove_file(run.join("checkpoint-4/manifest.json")).unwrap();
    let opt = run.join("checkpoint-4/optimizer.safetensors");
    let mut bytes = std::fs::read(&opt).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&opt, bytes).unwrap();
    let res = resume(&run);
    assert_eq!(res.status.code(), Some(2), "{}", stderr(&res));
    assert!(
        stderr(&res).contains("holds NaN or infinite values"),
        "{}",
        stderr(&res)
    );
}

/// Runs `script` as root in a private mount namespace (a tmpfs mounted
/// there vanishes with it); `None` when namespaces cannot be made here.
fn in_mount_namespace(script: &str) -> Output {
    Command::new("unshare")
        .args(["-rm", "sh", "-ec", script])
        .output()
        .expect("unshare (util-linux) runs")
}

#[test]
fn a_full_disk_leaves_the_last_good_checkpoint_and_resumes_bit_identically() {
    let tmp = tempfile::tempdir().unwrap();
    // The reference: the same run with room.
    let whole = tmp.path().join("whole");
    let cfg = write_config(tmp.path(), &whole, 6);
    let res = train(&cfg, &[]);
    assert!(res.status.success(), "{}", stderr(&res));
    let checkpoint_bytes: u64 = std::fs::read_dir(whole.join("checkpoint-2"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // A tmpfs with room for one checkpoint and a half: the second cannot be
    // written next to the first (ENOSPC), the first stays; once the disk is
    // larger, the resumed run ends with the same bytes as the whole one.
    let mnt = tmp.path().join("disk");
    std::fs::create_dir(&mnt).unwrap();
    let run = mnt.join("run");
    let cfg = tmp.path().join("small.toml");
    let text = std::fs::read_to_string(tmp.path().join("base.toml"))
        .unwrap()
        .replace(&format!("{whole:?}"), &format!("{run:?}"));
    std::fs::write(&cfg, text).unwrap();
    let small = checkpoint_bytes * 3 / 2 + 64 * 1024;
    let bin = env!("CARGO_BIN_EXE_ift");
    let script = format!(
        "mount -t tmpfs -o size={small} tmpfs {mnt:?}
         set +e
         {bin:?} train --config {cfg:?} 2> {err:?}
         echo $? > {code:?}
         set -e
         ls {run:?} > {ls:?}
         mount -o remount,size=64m {mnt:?}
         {bin:?} train --resume {run:?} 2>> {err:?}
         cp -r {run:?} {copy:?}",
        err = tmp.path().join("err"),
        code = tmp.path().join("code"),
        ls = tmp.path().join("ls"),
        copy = tmp.path().join("copy"),
    );
    let out = in_mount_namespace(&script);
    let err = std::fs::read_to_string(tmp.path().join("err")).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n{err}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = std::fs::read_to_string(tmp.path().join("code")).unwrap();
    assert_eq!(code.trim(), "3", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("checkpoint-2, is intact"),
        "the error names the intact checkpoint: {err}"
    );
    let ls = std::fs::read_to_string(tmp.path().join("ls")).unwrap();
    assert!(ls.lines().any(|l| l == "checkpoint-2"), "{ls}");
    let copy = tmp.path().join("copy");
    for file in ["model.safetensors", "config.json"] {
        let a = std::fs::read(whole.join("final").join(file)).unwrap();
        let b = std::fs::read(copy.join("final").join(file)).unwrap();
        assert!(a == b, "final/{file} differs after the disk-full resume");
    }

    // convert into a disk too small: an error naming the file, nothing left.
    let out_dir = mnt.join("converted");
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs {mnt:?}
         set +e
         {bin:?} convert --model {model:?} --out {out_dir:?} 2> {err:?}
         echo $? > {code:?}
         ls -A {mnt:?} > {ls:?}",
        model = model(),
        err = tmp.path().join("err2"),
        code = tmp.path().join("code2"),
        ls = tmp.path().join("ls2"),
    );
    let out = in_mount_namespace(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = std::fs::read_to_string(tmp.path().join("err2")).unwrap();
    let code = std::fs::read_to_string(tmp.path().join("code2")).unwrap();
    assert_eq!(code.trim(), "3", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let ls = std::fs::read_to_string(tmp.path().join("ls2")).unwrap();
    assert_eq!(ls.trim(), "", "a failed convert leaves nothing: {ls}");
}
