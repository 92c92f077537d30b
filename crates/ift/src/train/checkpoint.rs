//! Training checkpoints: `checkpoint-<step>/` is a Hugging Face model
//! directory (with LoRA: a PEFT adapter directory) plus what resuming needs (optimiser moments, step, data
//! position, the resolved config, the run's contract). Written atomically
//! and durably (`crate::atomic`): a checkpoint directory that exists is
//! complete, and pruning never leaves a half-deleted one under its name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::Optimizer;
use crate::atomic::{remove_dir_atomically, write_atomically, write_new_file, write_safetensors};
use crate::error::{Error, Result};
use crate::model::{LlamaForCausalLM, SaveOptions};
use crate::resume::RunContract;

/// Trainer state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Optimiser moments inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The resolved run configuration inside a run directory and each checkpoint.
pub const CONFIG_FILE: &str = "config.toml";

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
        write_new_file(&tmp.join(CONFIG_FILE), config_toml.as_bytes())
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

/// Reads a checkpoint's trainer state and optimiser tensors.
pub fn read_checkpoint(dir: &Path) -> Result<(TrainerState, HashMap<String, Tensor>)> {
    let state = read_state(dir)?;
    let tensors = candle_core::safetensors::load(dir.join(OPTIMIZER_FILE), &Device::Cpu)?;
    Ok((state, tensors))
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
