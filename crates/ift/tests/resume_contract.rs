//! Issue 13: resume is a checked contract. The fingerprints in
//! `trainer_state.json` refuse a resume whose config, data or initial model
//! changed (naming what changed) unless forced; `--set` on resume takes only
//! keys that cannot change the steps already taken; a resumed run writes
//! where it now is, not where its config says it was.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ift::config::RunConfig;
use ift::resume::{resume_config, Resume};
use ift::run::train_from_config;
use ift::train::{read_state, Observer, RunEnd, StepMetrics};

const CHATS: &str = include_str!("fixtures/records/tiny_chats.jsonl");

struct StopAt<'a>(u64, &'a AtomicBool);
impl Observer for StopAt<'_> {
    fn on_step(&mut self, m: &StepMetrics) {
        if m.step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama_gqa")
}

/// A run of 6 steps stopped after step 2: its directory.
fn stopped_run(dir: &Path) -> PathBuf {
    stopped_run_with(dir, "")
}

/// The same with `data_keys` (TOML lines) added to `[data]`.
fn stopped_run_with(dir: &Path, data_keys: &str) -> PathBuf {
    let data = dir.join("chats.jsonl");
    std::fs::write(&data, CHATS).unwrap();
    let out = dir.join("run");
    let text = format!(
        "[model]\npath = {:?}\n[data]\ntrain = {data:?}\n{data_keys}[train]\noutput_dir = {out:?}\nmax_steps = 6\nbatch_size = 2\nmicro_batch_size = 2\nlr = 1e-3\nsave_every = 0\n",
        model()
    );
    let config = RunConfig::parse(&text, "run.toml", &[]).unwrap();
    let stop = AtomicBool::new(false);
    let end = train_from_config(&config, None, &stop, &mut StopAt(2, &stop));
    assert!(matches!(end.unwrap().end, RunEnd::Stopped { .. }));
    out
}

fn resume(config: &RunConfig, resume: &Resume) -> Result<RunEnd, String> {
    let never = AtomicBool::new(false);
    struct Quiet;
    impl Observer for Quiet {}
    train_from_config(config, Some(resume), &never, &mut Quiet)
        .map(|o| o.end)
        .map_err(|e| e.to_string())
}

#[test]
fn the_checkpoint_records_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    let state = read_state(&out.join("checkpoint-2")).unwrap();
    let contract = state.contract.expect("fingerprints recorded");
    assert_eq!(contract.trajectory["train.lr"], "0.001");
    assert_eq!(contract.trajectory["train.seed"], "42");
    assert!(!contract.trajectory.contains_key("train.output_dir"));
    assert!(!contract.trajectory.contains_key("train.max_steps"));
    assert_eq!(contract.data_sha256.len(), 64);
    assert_eq!(contract.model_sha256.len(), 64);
}

#[test]
fn a_set_that_would_change_the_trajectory_is_refused_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    let err = resume_config(&out, &["train.lr=0.1".into()], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot resume {}: --set train.lr would change the steps already taken; on resume only \
             train.max_steps, train.epochs, train.eval_every, train.eval_at_start, train.eval_tasks, train.eval_limit, \
             train.save_every, train.keep_last, train.max_bad_steps, train.reference_cache, data.eval \
             may be set (--force to accept)",
            out.display()
        )
    );
    assert_eq!(err.class(), ift::ErrorClass::Usage);

    // Forced, the change is accepted and listed against the contract.
    let (config, r) = resume_config(&out, &["train.lr=0.1".into()], true).unwrap();
    assert_eq!(config.train.lr, 0.1);
    let forced = resume(&config, &r).unwrap();
    assert!(matches!(forced, RunEnd::Finished { .. }));

    // Extending the run is a key that keeps the steps taken.
    let (config, _) = resume_config(&out, &["train.max_steps=8".into()], false).unwrap();
    assert_eq!(config.train.max_steps, 8);
}

#[test]
fn changed_data_is_refused_naming_it_and_accepted_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    let data = tmp.path().join("chats.jsonl");
    std::fs::write(&data, CHATS.replace("Blue.", "Red.")).unwrap();
    let (config, mut r) = resume_config(&out, &[], false).unwrap();
    let err = resume(&config, &r).unwrap_err();
    assert_eq!(
        err,
        format!(
            "cannot resume {}: the run would not continue the same trajectory: data.train {}: the \
             file's bytes changed (--force to resume anyway)",
            out.join("checkpoint-2").display(),
            data.display()
        )
    );
    r.force = true;
    assert!(matches!(
        resume(&config, &r).unwrap(),
        RunEnd::Finished { .. }
    ));
}

#[test]
fn a_changed_eval_file_is_refused_too() {
    let tmp = tempfile::tempdir().unwrap();
    let eval = tmp.path().join("held.jsonl");
    std::fs::write(&eval, CHATS).unwrap();
    let out = stopped_run_with(tmp.path(), &format!("eval = {eval:?}\n"));
    let contract = read_state(&out.join("checkpoint-2"))
        .unwrap()
        .contract
        .unwrap();
    assert_eq!(contract.eval_data_sha256.len(), 64);
    assert!(!contract.trajectory.contains_key("data.eval"));
    std::fs::write(&eval, CHATS.replace("Paris.", "Lyon.")).unwrap();
    let (config, r) = resume_config(&out, &[], false).unwrap();
    let err = resume(&config, &r).unwrap_err();
    assert!(
        err.contains(&format!(
            "data.eval {}: the file's bytes changed",
            eval.display()
        )),
        "{err}"
    );
}

#[test]
fn an_edited_checkpoint_config_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    let path = out.join("checkpoint-2/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace("seed = 42", "seed = 5");
    std::fs::write(&path, &edited).unwrap();
    // Issue 27: the checkpoint's manifest names the edited file first. (The
    // file holds absolute paths, so its size depends on the temporary dir.)
    let err = resume_config(&out, &[], false).unwrap_err().to_string();
    let sizes = format!(
        "checkpoint-2/config.toml: has {} bytes, the manifest says {}",
        edited.len(),
        text.len()
    );
    assert_eq!(edited.len() + 1, text.len());
    assert!(err.contains(&sizes), "{err}");
    // Without a manifest (an earlier version's checkpoint) the contract
    // still names the key.
    std::fs::remove_file(out.join("checkpoint-2/manifest.json")).unwrap();
    let (config, r) = resume_config(&out, &[], false).unwrap();
    let err = resume(&config, &r).unwrap_err();
    assert!(
        err.ends_with("the run would not continue the same trajectory: train.seed: 42 then, 5 now (--force to resume anyway)"),
        "{err}"
    );
}

#[test]
fn a_copied_run_continues_in_the_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    let copy = tmp.path().join("copy");
    copy_dir(&out, &copy);
    let metrics_before = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let (config, r) = resume_config(&copy, &[], false).unwrap();
    assert_eq!(config.train.output_dir, copy);
    resume(&config, &r).unwrap();
    assert!(copy.join("final/model.safetensors").is_file());
    assert!(!out.join("final").exists(), "the original run is untouched");
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.jsonl")).unwrap(),
        metrics_before
    );
}

#[test]
fn nothing_to_resume_is_a_usage_error_naming_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let err = resume_config(tmp.path(), &[], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot resume {}: no complete checkpoint-<step> directory to resume from",
            tmp.path().display()
        )
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &to.join(e.file_name())),
            false => {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
}

/// Issue 28: `train.engine` was removed. A checkpoint an earlier version
/// wrote records it (config.toml, the contract, the manifest); made so here.
fn as_written_before_engine_was_removed(out: &Path, engine: &str) {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let ckpt = out.join("checkpoint-2");
    let config = std::fs::read_to_string(ckpt.join("config.toml")).unwrap();
    assert!(config.contains("\n[train]\n"));
    let config = config.replace(
        "\n[train]\n",
        &format!("\n[train]\nengine = \"{engine}\"\n"),
    );
    std::fs::write(ckpt.join("config.toml"), &config).unwrap();
    let state_path = ckpt.join("trainer_state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let trajectory = &mut state["contract"]["trajectory"];
    trajectory["train.engine"] = format!("\"{engine}\"").into();
    // The contract's config fingerprint: SHA-256 of its `key=value` lines, sorted.
    let lines: std::collections::BTreeMap<String, String> =
        serde_json::from_value(trajectory.clone()).unwrap();
    let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    state["contract"]["config_sha256"] = hex(text.as_bytes()).into();
    let state_text = serde_json::to_string_pretty(&state).unwrap();
    std::fs::write(&state_path, &state_text).unwrap();
    let manifest_path = ckpt.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    for (name, bytes) in [
        ("config.toml", config.as_bytes()),
        ("trainer_state.json", state_text.as_bytes()),
    ] {
        manifest["files"][name] = serde_json::json!({"bytes": bytes.len(), "sha256": hex(bytes)});
    }
    std::fs::write(manifest_path, manifest.to_string()).unwrap();
}

#[test]
fn a_run_saved_with_the_removed_train_engine_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    as_written_before_engine_was_removed(&out, "explicit");
    let (config, r) = resume_config(&out, &[], false).unwrap();
    assert!(matches!(resume(&config, &r), Ok(RunEnd::Finished { .. })));
    // The run's own config no longer has the key.
    let text = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(!text.contains("engine ="), "{text}");
}

#[test]
fn a_run_saved_on_the_removed_graph_engine_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stopped_run(tmp.path());
    as_written_before_engine_was_removed(&out, "graph");
    let (config, r) = resume_config(&out, &[], false).unwrap();
    let err = resume(&config, &r).unwrap_err();
    assert!(
        err.ends_with("train.engine: \"graph\" then, removed (always \"explicit\") now (--force to resume anyway)"),
        "{err}"
    );
    let (config, r) = resume_config(&out, &[], true).unwrap();
    assert!(matches!(resume(&config, &r), Ok(RunEnd::Finished { .. })));
}

#[test]
fn a_config_setting_the_removed_train_engine_is_refused_naming_it() {
    let text =
        "[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n[train]\nengine = \"explicit\"\n";
    let err = RunConfig::parse(text, "run.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "run.toml:6: `train.engine`: was removed: training always runs on the explicit engine"
        ),
        "{err}"
    );
}
