//! A GGUF file used directly as a model (`model.path = "model.gguf"`): read
//! and converted in memory, never written out as a Hugging Face directory.
//! Only the small JSON files (config and tokenizer) pass through a private
//! temporary directory, because the tokenizer loader reads files.

use std::path::Path;

use candle_core::{DType, Device};

use super::hf_parts;
use crate::error::{Error, Result};
use crate::model::weights::CheckpointTensors;
use crate::model::{check_vocab, LlamaForCausalLM, Pretrained, Trainable};
use crate::tokenizer::HfTokenizer;

/// Whether `path` names a GGUF file (by its extension).
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        && path.is_file()
}

/// Loads the GGUF file `path` as a model and tokenizer (weights in f32).
pub fn load_gguf(path: &Path, trainable: &Trainable, device: &Device) -> Result<Pretrained> {
    if !device.is_cpu() {
        return Err(Error::Train(format!(
            "{}: GGUF bases load on the CPU only",
            path.display()
        )));
    }
    let parts = hf_parts(path, DType::F32)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = std::env::temp_dir().join(format!("ift-gguf-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let loaded = load_from(
        &tmp,
        path,
        parts.config_json.clone(),
        parts.files,
        parts.tensors,
        trainable,
    );
    let _ = std::fs::remove_dir_all(&tmp);
    let (tokenizer, mut model) = loaded?;
    model.raw_config = parts.config_json;
    check_vocab(&tokenizer, &model, path)?;
    Ok(Pretrained {
        model,
        tokenizer,
        dir: path.to_path_buf(),
    })
}

/// Writes the JSON files into `tmp` and builds tokenizer and model from them
/// and the in-memory `tensors`.
fn load_from(
    tmp: &Path,
    origin: &Path,
    config_json: serde_json::Value,
    files: super::tokenizer::TokenizerFiles,
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
    trainable: &Trainable,
) -> Result<(HfTokenizer, LlamaForCausalLM)> {
    let written = [
        ("config.json", &config_json),
        ("tokenizer.json", &files.tokenizer),
        ("tokenizer_config.json", &files.tokenizer_config),
    ];
    for (name, value) in written {
        let file = tmp.join(name);
        let text = serde_json::to_string(value).expect("JSON values serialise");
        std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
    }
    let tokenizer = HfTokenizer::from_dir(tmp)?;
    let tensors = CheckpointTensors::from_map(origin, tensors);
    let model =
        LlamaForCausalLM::from_config_and_tensors(&tmp.join("config.json"), tensors, trainable)?;
    Ok((tokenizer, model))
}
