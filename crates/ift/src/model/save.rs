//! Writing a Hugging Face model directory that `transformers` loads as is.
//!
//! Writes are atomic: everything goes to a temporary sibling directory that
//! is renamed over the target only when complete, so an interrupted save
//! never leaves a half-written checkpoint where a good one was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::DType;

use super::llama::LlamaForCausalLM;
use super::weights::SINGLE_FILE;
use crate::error::{Error, Result};

/// Tokenizer and generation files copied from the source model directory.
pub const COMPANION_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
];

/// How to save a model.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// Weight dtype on disk. Default f32: training keeps f32 weights, and
    /// rounding them would make a resumed run differ from an unbroken one.
    pub dtype: DType,
    /// A model directory whose tokenizer and generation files are copied.
    pub companions_from: Option<PathBuf>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            dtype: DType::F32,
            companions_from: None,
        }
    }
}

impl LlamaForCausalLM {
    /// Saves `config.json`, `model.safetensors` (Hugging Face names, the tied
    /// head not duplicated) and the companion files into `dir`.
    pub fn save_pretrained(&self, dir: &Path, options: &SaveOptions) -> Result<()> {
        write_atomically(dir, |tmp| self.write_model_files(tmp, options))
    }

    /// Writes the files of [`Self::save_pretrained`] into an existing
    /// directory, without the atomic rename (for callers that add files of
    /// their own, such as training checkpoints, before renaming).
    pub fn write_model_files(&self, dir: &Path, options: &SaveOptions) -> Result<()> {
        if self.is_quantized() {
            return Err(Error::Train(format!(
                "{}: a quantised base is not saved (it is frozen and read from model.path); save the adapter",
                dir.display()
            )));
        }
        let dtype_name = match options.dtype {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            _ => "float32",
        };
        let mut config = self.raw_config.clone();
        // transformers 4.x reads `torch_dtype`, 5.x `dtype`; keep whichever
        // the original had, and 4.x's when it had neither.
        let has_new = config.get("dtype").is_some();
        if has_new {
            config["dtype"] = dtype_name.into();
        }
        if !has_new || config.get("torch_dtype").is_some() {
            config["torch_dtype"] = dtype_name.into();
        }
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config).expect("JSON values serialise");
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;

        let mut tensors = HashMap::new();
        for (name, t) in self.params.named() {
            tensors.insert(name.clone(), t.detach().to_dtype(options.dtype)?);
        }
        let path = dir.join(SINGLE_FILE);
        let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        safetensors::serialize_to_file(&tensors, metadata, &path).map_err(|e| {
            Error::Safetensors {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        if let Some(src) = &options.companions_from {
            copy_companions(src, dir)?;
        }
        Ok(())
    }
}

/// Copies the tokenizer and generation files that exist in `src` into `dst`.
pub fn copy_companions(src: &Path, dst: &Path) -> Result<()> {
    for name in COMPANION_FILES {
        let from = src.join(name);
        if from.is_file() {
            std::fs::copy(&from, dst.join(name)).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to a temporary sibling of `path`, syncs it, then renames it
/// over `path`: a reader sees the old file or the new one, never a part.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Runs `fill` on a fresh temporary sibling of `dir`, then moves it into
/// place, replacing any previous `dir` only after `fill` succeeded.
pub fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
