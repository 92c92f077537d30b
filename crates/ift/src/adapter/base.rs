//! The base model an adapter belongs to. A saved adapter carries
//! `ift_base_model.json`: the base's architecture and a sample of its
//! embedding matrix (cheap to take, and different for any two pretrained
//! models; robust to re-saving the base in bf16 or f16, which round the
//! sample by at most 2⁻⁸ relative). Attaching the adapter to another model
//! whose shapes happen to fit is refused, naming both. Adapters made
//! elsewhere (PEFT) have no such file and are not checked.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::LlamaForCausalLM;

/// The file a saved adapter's base fingerprint lives in.
pub const BASE_FILE: &str = "ift_base_model.json";

/// Relative tolerance on the embedding sample: bf16's rounding is 2⁻⁸.
const SAMPLE_RTOL: f32 = 1e-2;

/// What identifies a base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaseFingerprint {
    pub family: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    /// The first 8 values of 4 embedding rows spread over the vocabulary.
    pub embed_sample: Vec<f32>,
}

impl BaseFingerprint {
    /// The fingerprint of `model`'s base (its embedding is never adapted
    /// nor quantised).
    pub fn of(model: &LlamaForCausalLM) -> Result<Self> {
        let c = &model.config;
        let embed = model.embed_tokens();
        let (rows, cols) = embed.dims2()?;
        let mut embed_sample = Vec::new();
        for r in [0, rows / 3, 2 * rows / 3, rows.saturating_sub(1)] {
            let row = embed
                .narrow(0, r, 1)?
                .narrow(1, 0, cols.min(8))?
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            embed_sample.extend(row);
        }
        Ok(Self {
            family: format!("{:?}", c.family).to_lowercase(),
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_hidden_layers: c.num_hidden_layers,
            embed_sample,
        })
    }

    /// How `other` differs from `self`, if it does.
    pub fn difference(&self, other: &Self) -> Option<String> {
        let fields = [
            ("family", self.family.clone(), other.family.clone()),
            (
                "vocab_size",
                self.vocab_size.to_string(),
                other.vocab_size.to_string(),
            ),
            (
                "hidden_size",
                self.hidden_size.to_string(),
                other.hidden_size.to_string(),
            ),
            (
                "intermediate_size",
                self.intermediate_size.to_string(),
                other.intermediate_size.to_string(),
            ),
            (
                "num_hidden_layers",
                self.num_hidden_layers.to_string(),
                other.num_hidden_layers.to_string(),
            ),
        ];
        for (name, a, b) in fields {
            if a != b {
                return Some(format!("{name} {a} vs {b}"));
            }
        }
        let close = self.embed_sample.len() == other.embed_sample.len()
            && self
                .embed_sample
                .iter()
                .zip(&other.embed_sample)
                .all(|(a, b)| (a - b).abs() <= SAMPLE_RTOL * a.abs().max(b.abs()) + 1e-6);
        (!close).then(|| "the same shapes but other weights (embedding sample)".to_string())
    }
}

/// Writes `model`'s base fingerprint into the adapter directory `dir`.
pub fn write_base_file(model: &LlamaForCausalLM, dir: &Path) -> Result<()> {
    let fp = BaseFingerprint::of(model)?;
    let path = dir.join(BASE_FILE);
    let text = serde_json::to_string_pretty(&fp).expect("serialisable") + "\n";
    crate::atomic::write_new_file(&path, text.as_bytes())
}

/// Refuses to attach the adapter in `dir` to `base` (loaded from
/// `base_dir`) when the adapter records another base.
pub fn check_base(base: &LlamaForCausalLM, base_dir: &Path, dir: &Path) -> Result<()> {
    let path = dir.join(BASE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let saved: BaseFingerprint =
        serde_json::from_str(&text).map_err(|source| Error::Json { path, source })?;
    match saved.difference(&BaseFingerprint::of(base)?) {
        None => Ok(()),
        Some(how) => Err(Error::Adapter {
            path: dir.to_path_buf(),
            message: format!(
                "this adapter was trained on another base model than {} ({how}); give the base it was trained on",
                base_dir.display()
            ),
        }),
    }
}
