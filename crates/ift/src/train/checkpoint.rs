//! Training checkpoints: `checkpoint-<step>/` is a Hugging Face model
//! directory (with LoRA: a PEFT adapter directory) plus what resuming needs (optimiser moments, step, data
//! position, the resolved config, the run's contract). Written atomically
//! and durably (`crate::atomic`): a checkpoint directory that exists is
//! complete, and pruning never leaves a half-deleted one under its name.
//!
//! Every checkpoint carries `manifest.json`, the size and SHA-256 of each of
//! its files, written last. Resuming verifies it ([`verify_checkpoint`]) and
//! checks that the optimiser state is finite and the state's step is the
//! directory's; [`newest_intact_checkpoint`] passes over a damaged
//! checkpoint to the newest intact one, saying why.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::Optimizer;
use crate::atomic::{remove_dir_atomically, write_atomically, write_new_file, write_safetensors};
use crate::error::{Error, Result};
use crate::model::{LlamaForCausalLM, SaveOptions};

/// Trainer state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimiser moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The resolved run configuration inside a run directory and each checkpoint.
pub const CONFIG_FILE: &str = "config.toml";
/// Size and SHA-256 of every other file of a checkpoint.
pub const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_FORMAT: &str = "ift-checkpoint-manifest-1";

/// `manifest.json`: what a checkpoint held when it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// File name (relative to the checkpoint) → its size and digest.
    pub files: std::collections::BTreeMap<String, FileDigest>,
}

/// One file's size in bytes and hex SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// What a run's trajectory depends on, recorded in `trainer_state.json`
/// (`crate::resume` computes and checks it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContract {
    /// SHA-256 of `trajectory`.
    pub config_sha256: String,
    /// Every resolved key that shapes the trajectory, as TOML text (so that a
    /// mismatch can name the key and both values).
    pub trajectory: BTreeMap<String, String>,
    /// SHA-256 of the bytes of `data.train`.
    pub data_sha256: String,
    /// SHA-256 of the bytes of `data.eval` ("" when unset, or in a state file
    /// written before it was recorded: then not checked). It does not shape
    /// the weights, but a changed file would make later `eval_loss` rows
    /// incomparable with earlier ones.
    #[serde(default)]
    pub eval_data_sha256: String,
    /// SHA-256 of the initial model's `config.json`, weights and tokenizer files.
    pub model_sha256: String,
}

/// Where a run stands. The data position is a pure function of `step` and
/// the seed (see `order.rs`); `epoch` and `batch_in_epoch` (the position of
/// the next batch) are recorded for people.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimiser steps completed.
    pub step: u64,
    pub epoch: u64,
    /// Batches of the current epoch already consumed (the data position).
    #[serde(default)]
    pub batch_in_epoch: u64,
    pub seed: u64,
    /// Real tokens processed so far.
    pub tokens_seen: u64,
    /// Wall-clock seconds of training so far (across resumes).
    pub elapsed_s: f64,
    /// What the trajectory depends on, checked on resume (`crate::resume`).
    /// Absent in checkpoints of earlier versions: then resume checks nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<RunContract>,
    /// Non-finite steps in a row just before this point (kept across a
    /// resume, so `train.max_bad_steps` counts a streak that spans one).
    #[serde(default)]
    pub bad_steps: u64,
    /// Whether the evaluations due at `step` are written to `metrics.jsonl`
    /// (false when a signal interrupted them: a resume runs them first).
    #[serde(default = "evaluated_by_default")]
    pub evaluated: bool,
}

/// Checkpoints of earlier versions were written after their evaluations.
fn evaluated_by_default() -> bool {
    true
}

/// Writes `<run_dir>/checkpoint-<step>/` and deletes the oldest beyond `keep_last`.
pub fn save_checkpoint(
    run_dir: &Path,
    model: &LlamaForCausalLM,
    companions: &Path,
    optimizer: &Optimizer,
    state: &TrainerState,
    config_toml: &str,
    keep_last: usize,
) -> Result<PathBuf> {
    let dir = run_dir.join(format!("checkpoint-{}", state.step));
    let last_good = latest_checkpoint(run_dir)?;
    let written = write_atomically(&dir, |tmp| {
        let opts = SaveOptions {
            companions_from: Some(companions.to_path_buf()),
            ..SaveOptions::default()
        };
        model.write_trained_files(tmp, &opts)?;
        let tensors: HashMap<String, Tensor> = optimizer
            .state_tensors()
            .map_err(other)?
            .into_iter()
            .collect();
        write_safetensors(&tmp.join(OPTIMIZER_FILE), &tensors, None)?;
        let json = serde_json::to_string_pretty(state).expect("serialisable");
        write_new_file(&tmp.join(STATE_FILE), json.as_bytes())?;
        write_new_file(&tmp.join(CONFIG_FILE), config_toml.as_bytes())?;
        // Last, over the bytes as they are on disk.
        let manifest = serde_json::to_string_pretty(&manifest_of(tmp)?).expect("serialisable");
        write_new_file(&tmp.join(MANIFEST_FILE), manifest.as_bytes())
    });
    if let Err(source) = written {
        return Err(Error::CheckpointNotWritten {
            source: Box::new(source),
            last_good,
        });
    }
    prune(run_dir, keep_last)?;
    Ok(dir)
}

/// The newest complete checkpoint of a run directory, if any.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(run_dir)?.into_iter().last().map(|(_, p)| p))
}

/// Reads a checkpoint's trainer state and optimiser tensors, after checking
/// them: the manifest (when there is one), the state's step against the
/// directory's name, and every optimiser value finite.
pub fn read_checkpoint(dir: &Path) -> Result<(TrainerState, HashMap<String, Tensor>)> {
    verify_checkpoint(dir)?;
    let state = read_state(dir)?;
    let named_step = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("checkpoint-"))
        .and_then(|n| n.parse::<u64>().ok());
    if let Some(n) = named_step.filter(|&n| n != state.step) {
        return Err(Error::Checkpoint {
            path: dir.join(STATE_FILE),
            message: format!(
                "says step {} but the directory is checkpoint-{n}; the file was edited or moved",
                state.step
            ),
        });
    }
    let path = dir.join(OPTIMIZER_FILE);
    if !path.is_file() {
        return Err(Error::Checkpoint {
            path,
            message: "missing (the optimiser state a resume needs)".into(),
        });
    }
    let tensors =
        candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: format!("not a readable safetensors file: {e}"),
        })?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        let t = &tensors[name];
        if t.dtype() == candle_core::DType::I64 {
            // Update counters (`step`, `step.<param>`): never more updates
            // than the run's steps.
            let counts = t.flatten_all()?.to_vec1::<i64>()?;
            if let Some(&n) = counts.iter().find(|&&n| n < 0 || n as u64 > state.step) {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    message: format!(
                        "tensor `{name}` counts {n} updates, but the checkpoint is at step {}",
                        state.step
                    ),
                });
            }
            continue;
        }
        if !all_finite(t)? {
            return Err(Error::Checkpoint {
                path: path.clone(),
                message: format!("tensor `{name}` holds NaN or infinite values"),
            });
        }
    }
    Ok((state, tensors))
}

/// Whether every element of `t` is finite. A sum is finite exactly when all
/// the terms are unless it overflows, so a non-finite sum is checked element
/// by element before it is believed.
pub fn all_finite(t: &Tensor) -> Result<bool> {
    let t = t.to_dtype(candle_core::DType::F32)?;
    let sum = t.sum_all()?.to_scalar::<f32>()?;
    if sum.is_finite() {
        return Ok(true);
    }
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .all(|v| v.is_finite()))
}

/// The size and SHA-256 of every file under `dir` (but the manifest).
fn manifest_of(dir: &Path) -> Result<Manifest> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let path = entry.map_err(|e| Error::io(&d, e))?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            if rel != MANIFEST_FILE {
                files.insert(rel, digest(&path)?);
            }
        }
    }
    Ok(Manifest {
        format: MANIFEST_FORMAT.into(),
        files,
    })
}

fn digest(path: &Path) -> Result<FileDigest> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut h).map_err(|e| Error::io(path, e))?;
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(FileDigest { bytes, sha256 })
}

/// Checks `dir` against its `manifest.json`: every listed file present with
/// its size and digest. An error names the file at fault. A checkpoint of an
/// earlier version (no manifest) passes unchecked; [`has_manifest`] tells.
pub fn verify_checkpoint(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bad = |message: String| Error::Checkpoint {
        path: path.clone(),
        message,
    };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a checkpoint manifest: {e}")))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(bad(format!(
            "format `{}`, expected `{MANIFEST_FORMAT}`",
            manifest.format
        )));
    }
    for required in [STATE_FILE, OPTIMIZER_FILE, CONFIG_FILE] {
        if !manifest.files.contains_key(required) {
            return Err(bad(format!("lists no {required}")));
        }
    }
    for (rel, want) in &manifest.files {
        let file = dir.join(rel);
        if rel
            .split(['/', '\\'])
            .any(|part| part == ".." || part.is_empty())
        {
            return Err(bad(format!("names `{rel}`, outside the checkpoint")));
        }
        if !file.is_file() {
            return Err(Error::Checkpoint {
                path: file,
                message: "missing (listed in the checkpoint's manifest.json)".into(),
            });
        }
        let got = digest(&file)?;
        if got.bytes != want.bytes {
            return Err(Error::Checkpoint {
                path: file,
                message: format!(
                    "has {} bytes, the manifest says {}: truncated or altered since it was written",
                    got.bytes, want.bytes
                ),
            });
        }
        if got.sha256 != want.sha256 {
            return Err(Error::Checkpoint {
                path: file,
                message: "differs from the checkpoint's manifest.json (SHA-256): altered or corrupted since it was written".into(),
            });
        }
    }
    Ok(())
}

/// Whether `dir` has a `manifest.json` (checkpoints of earlier versions do not).
pub fn has_manifest(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file()
}

/// The newest checkpoint of `run_dir` that passes [`read_checkpoint`]'s
/// checks, and for each newer one passed over, why. `Ok((None, why))` when
/// none is intact.
pub fn newest_intact_checkpoint(run_dir: &Path) -> Result<(Option<PathBuf>, Vec<String>)> {
    let mut passed_over = Vec::new();
    for (_, dir) in checkpoints(run_dir)?.into_iter().rev() {
        match read_checkpoint(&dir) {
            Ok(_) => return Ok((Some(dir), passed_over)),
            Err(e) => passed_over.push(format!("{} is damaged: {e}", dir.display())),
        }
    }
    Ok((None, passed_over))
}

/// Reads a checkpoint's `trainer_state.json`.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path, source })
}

/// `checkpoint-<step>` directories holding a trainer state, by step.
fn checkpoints(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(run_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io(run_dir, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let step = name
            .strip_prefix("checkpoint-")
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step.filter(|_| entry.path().join(STATE_FILE).is_file()) {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn prune(run_dir: &Path, keep_last: usize) -> Result<()> {
    let all = checkpoints(run_dir)?;
    if keep_last == 0 || all.len() <= keep_last {
        return Ok(());
    }
    for (_, dir) in &all[..all.len() - keep_last] {
        remove_dir_atomically(dir)?;
    }
    Ok(())
}

fn other(e: super::optim::OptimError) -> Error {
    Error::Train(e.to_string())
}
