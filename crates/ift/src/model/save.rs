//! Writing a Hugging Face model directory that `transformers` loads as is.
//!
//! Writes are atomic and durable (`crate::atomic`): everything goes to a
//! temporary sibling directory that is synced and renamed over the target
//! only when complete, so an interrupted save never leaves a half-written
//! checkpoint where a good one was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::DType;

use super::llama::LlamaForCausalLM;
use super::weights::SINGLE_FILE;
use crate::atomic::{write_atomically, write_new_file, write_safetensors};
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
        write_new_file(&path, (text + "\n").as_bytes())?;

        let mut tensors = HashMap::new();
        for (name, t) in self.params.named() {
            tensors.insert(name.clone(), t.detach().to_dtype(options.dtype)?);
        }
        let path = dir.join(SINGLE_FILE);
        let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        write_safetensors(&path, &tensors, metadata)?;
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
            let to = dst.join(name);
            std::fs::copy(&from, &to).map_err(|e| Error::Write {
                path: to,
                source: e,
            })?;
        }
    }
    Ok(())
}
