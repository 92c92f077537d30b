//! `metrics.jsonl`: one JSON object per optimiser step, plus evaluation rows.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic::write_file_atomically;
use crate::error::{Error, Result};

/// The metrics file name inside a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One optimiser step's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepMetrics {
    pub step: u64,
    pub epoch: u64,
    /// The step's loss, normalised as `objective.normalize` says.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub lr: f64,
    /// Real (non-padding) tokens in the step.
    pub tokens: usize,
    /// Trained target tokens in the step.
    pub trained_tokens: usize,
    pub tokens_per_s: f64,
    /// Seconds since the run started (across resumes).
    pub elapsed_s: f64,
    /// The objective's own figures (IFT: `loss_sft`, `loss_mixed`, `lambda`,
    /// `pred_accuracy`, `neg_weight_frac`).
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, f64>,
}

/// Appends rows to `metrics.jsonl`.
pub struct MetricsWriter {
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens the run's metrics; on resume, drops rows past `resumed_step`
    /// (they belong to the interrupted part that is being redone).
    pub fn open(run_dir: &Path, resumed_step: Option<u64>) -> Result<Self> {
        let path = run_dir.join(METRICS_FILE);
        match resumed_step {
            None => write_file_atomically(&path, b"")?,
            Some(step) => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                        v.get("step")
                            .and_then(|s| s.as_u64())
                            .is_some_and(|s| s <= step)
                    })
                    .collect();
                let body = kept.iter().map(|l| format!("{l}\n")).collect::<String>();
                write_file_atomically(&path, body.as_bytes())?;
            }
        }
        Ok(MetricsWriter { path })
    }

    /// Makes the rows written so far durable (before a checkpoint, so that
    /// a resume from it finds them).
    pub fn sync(&self) -> Result<()> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.sync_all().map_err(|e| Error::Write {
            path: self.path.clone(),
            source: e,
        })
    }

    /// Appends one row.
    pub fn write(&mut self, row: &impl Serialize) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        let line = serde_json::to_string(row).expect("metrics serialise");
        writeln!(f, "{line}").map_err(|e| Error::Write {
            path: self.path.clone(),
            source: e,
        })
    }
}
