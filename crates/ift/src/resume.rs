//! Resume as a checked contract. A run records in every checkpoint's
//! `trainer_state.json` what its trajectory depends on — the resolved
//! config's trajectory keys, the training data's bytes and the initial
//! model's files — and a resume that would not continue the same trajectory
//! is refused, naming what changed, unless forced.
//!
//! Keys that cannot change the steps already taken (how long to train, how
//! often to evaluate and save, the held-out data) may be changed on resume;
//! `max_steps` and `epochs` also set the schedule's length, so extending a
//! run with a decaying schedule changes the learning rate of the steps still
//! to come, never of those done.

use std::collections::BTreeMap;

pub use crate::train::checkpoint::RunContract;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::atomic::recover_locked_dir;
use crate::config::{RunConfig, REMOVED_KEYS};
use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::reference::weights_fingerprint;
use crate::train::checkpoint::{has_manifest, newest_intact_checkpoint};
use crate::train::CONFIG_FILE;

/// Keys `--set` may change on resume: none of them alters a step already taken.
pub const RESUME_SETTABLE: &[&str] = &[
    "train.max_steps",
    "train.epochs",
    "train.eval_every",
    "train.eval_at_start",
    "train.eval_tasks",
    "train.eval_limit",
    "train.save_every",
    "train.keep_last",
    "train.max_bad_steps",
    "train.reference_cache",
    "data.eval",
];

/// Keys left out of the config fingerprint: where the run writes, and paths
/// whose contents are fingerprinted instead (a moved file is the same file).
const BY_CONTENT: &[&str] = &["train.output_dir", "data.train", "data.eval", "model.path"];

/// A run to continue: its newest checkpoint, and whether a changed contract
/// is accepted (`--force`).
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub checkpoint: PathBuf,
    pub force: bool,
    /// What choosing `checkpoint` passed over (newer checkpoints found
    /// damaged, each with the file at fault), for the run to report.
    pub notices: Vec<String>,
}

/// The configuration to resume the run in `run_dir` with: its newest
/// checkpoint's resolved config, `overrides` applied (only
/// [`RESUME_SETTABLE`] keys unless `force`), and `train.output_dir` set to
/// `run_dir` itself, so that a copied run continues where it now is.
pub fn resume_config(
    run_dir: &Path,
    overrides: &[String],
    force: bool,
) -> Result<(RunConfig, Resume)> {
    let refuse = |message: String| Error::Resume {
        dir: run_dir.to_path_buf(),
        message,
    };
    if !run_dir.is_dir() {
        return Err(refuse(
            "no complete checkpoint-<step> directory to resume from".into(),
        ));
    }
    // A run still going is refused here, before anything is cleaned up;
    // the lock is taken again for the run itself (`crate::run`).
    let lock = DirLock::acquire(run_dir, "the run directory")?;
    recover_locked_dir(&lock)?;
    let (checkpoint, passed_over) = newest_intact_checkpoint(run_dir)?;
    let checkpoint = match checkpoint {
        Some(c) => c,
        None if passed_over.is_empty() => {
            return Err(refuse(
                "no complete checkpoint-<step> directory to resume from".into(),
            ))
        }
        None => {
            return Err(refuse(format!(
                "no intact checkpoint to resume from: {}",
                passed_over.join("; ")
            )))
        }
    };
    let mut notices: Vec<String> = passed_over
        .into_iter()
        .map(|why| format!("warning: {why}; passed over"))
        .collect();
    if !notices.is_empty() {
        notices.push(format!(
            "resuming from {}, the newest intact checkpoint",
            checkpoint.display()
        ));
    }
    if !has_manifest(&checkpoint) {
        notices.push(format!(
            "warning: {} has no manifest.json (an earlier version wrote it); its files are not verified",
            checkpoint.display()
        ));
    }
    for o in overrides {
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
        if !force && !RESUME_SETTABLE.contains(&key) {
            return Err(refuse(format!(
                "--set {key} would change the steps already taken; on resume only {} may be set (--force to accept)",
                RESUME_SETTABLE.join(", ")
            )));
        }
    }
    let path = checkpoint.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let text = without_removed_keys(&text);
    let mut config = RunConfig::parse(&text, &path.display().to_string(), overrides)?;
    // Absolute, as a fresh run's resolved paths are: every checkpoint's
    // config.toml then reads the same before and after the resume.
    config.train.output_dir = std::path::absolute(run_dir).unwrap_or_else(|_| run_dir.into());
    Ok((
        config,
        Resume {
            checkpoint,
            force,
            notices,
        },
    ))
}

/// A resolved config that an earlier version wrote, without the keys since
/// removed (`config::REMOVED_KEYS`; each written as one `key = value` line of
/// its section). Whether the run can continue is the contract's question:
/// [`contract_changes`] accepts a removed key whose value was the behaviour
/// that remains.
pub fn without_removed_keys(text: &str) -> String {
    let mut section = "";
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = name.trim();
        }
        let key = t.split_once('=').map(|(k, _)| k.trim());
        let removed = REMOVED_KEYS
            .iter()
            .any(|r| r.section == section && key == Some(r.key));
        if !removed {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `trajectory` as a run with `saved`'s removed keys sees it: each removed
/// key that held the value that remains, put back.
fn with_removed_as_saved(
    saved: &BTreeMap<String, String>,
    trajectory: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut t = trajectory.clone();
    for r in &REMOVED_KEYS {
        let key = format!("{}.{}", r.section, r.key);
        if saved.get(&key).map(String::as_str) == Some(r.remains) {
            t.insert(key, r.remains.to_string());
        }
    }
    t
}

fn trajectory_sha256(trajectory: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in trajectory {
        h.update(format!("{k}={v}\n"));
    }
    hex(&h.finalize())
}

/// The contract of a run with `config`, from the files as they are now.
pub fn run_contract(config: &RunConfig) -> Result<RunContract> {
    let trajectory = trajectory_keys(config);
    let config_sha256 = trajectory_sha256(&trajectory);
    let model = &config.model.path;
    // A resumed run loads its weights from the checkpoint and may have lost
    // its base model (a run copied elsewhere): then "" (not checked). A GGUF
    // base (`model.path` a file) is fingerprinted by its bytes.
    if !model.is_dir() {
        return Ok(RunContract {
            config_sha256,
            trajectory,
            data_sha256: file_sha256(&config.data.train)?,
            eval_data_sha256: eval_sha256(config)?,
            model_sha256: match model.is_file() {
                true => file_sha256(model)?,
                false => String::new(),
            },
        });
    }
    let mut m = Sha256::new();
    m.update(weights_fingerprint(model)?);
    for name in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ] {
        if let Ok(bytes) = std::fs::read(model.join(name)) {
            m.update(name);
            m.update(Sha256::digest(bytes));
        }
    }
    Ok(RunContract {
        config_sha256,
        trajectory,
        data_sha256: file_sha256(&config.data.train)?,
        eval_data_sha256: eval_sha256(config)?,
        model_sha256: hex(&m.finalize()),
    })
}

/// What differs between the contract a run was started with and now, one
/// line per difference; empty when the run continues the same trajectory.
pub fn contract_changes(saved: &RunContract, now: &RunContract, config: &RunConfig) -> Vec<String> {
    let mut changes = Vec::new();
    let now_trajectory = with_removed_as_saved(&saved.trajectory, &now.trajectory);
    let keys: std::collections::BTreeSet<&String> = saved
        .trajectory
        .keys()
        .chain(now_trajectory.keys())
        .collect();
    for key in keys {
        let (a, b) = (saved.trajectory.get(key), now_trajectory.get(key));
        if a != b {
            let removed = REMOVED_KEYS
                .iter()
                .find(|r| format!("{}.{}", r.section, r.key) == **key);
            let show = |v: Option<&String>| match (v, removed) {
                (Some(v), _) => v.clone(),
                (None, Some(r)) => format!("removed (always {})", r.remains),
                (None, None) => "(unset)".to_string(),
            };
            changes.push(format!("{key}: {} then, {} now", show(a), show(b)));
        }
    }
    let now_sha = match now_trajectory == now.trajectory {
        true => now.config_sha256.clone(),
        false => trajectory_sha256(&now_trajectory),
    };
    if changes.is_empty() && saved.config_sha256 != now_sha {
        changes.push("the resolved config's fingerprint differs".into());
    }
    if saved.data_sha256 != now.data_sha256 {
        let path = config.data.train.display();
        changes.push(format!("data.train {path}: the file's bytes changed"));
    }
    if !saved.eval_data_sha256.is_empty() && saved.eval_data_sha256 != now.eval_data_sha256 {
        let path = config.data.eval.as_deref().unwrap_or(Path::new("(unset)"));
        changes.push(format!(
            "data.eval {}: the file's bytes changed (later eval_loss rows would not compare with earlier ones)",
            path.display()
        ));
    }
    if !now.model_sha256.is_empty() && saved.model_sha256 != now.model_sha256 {
        let path = config.model.path.display();
        changes.push(format!(
            "model.path {path}: the initial model's files changed"
        ));
    }
    changes
}

/// Every resolved key as `section.key` → its TOML text, minus [`BY_CONTENT`]
/// and [`RESUME_SETTABLE`].
fn trajectory_keys(config: &RunConfig) -> BTreeMap<String, String> {
    let mut flat = BTreeMap::new();
    let value = toml::Value::try_from(config).expect("the config serialises");
    flatten("", &value, &mut flat);
    flat.retain(|k, _| !BY_CONTENT.contains(&k.as_str()) && !RESUME_SETTABLE.contains(&k.as_str()));
    flat
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = match prefix {
                    "" => k.clone(),
                    p => format!("{p}.{k}"),
                };
                flatten(&key, v, out);
            }
        }
        v => {
            out.insert(prefix.to_string(), v.to_string());
        }
    }
}

fn eval_sha256(config: &RunConfig) -> Result<String> {
    config
        .data
        .eval
        .as_deref()
        .map_or(Ok(String::new()), file_sha256)
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
