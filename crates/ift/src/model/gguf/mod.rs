//! GGUF (llama.cpp) → Hugging Face model directory.
//!
//! candle's own reader parses the file and dequantises every tensor type it
//! knows (F32, F16, BF16, Q4_0 … Q8_0, the K-quants); this module maps the
//! names, undoes llama.cpp's Q/K permutation, and rebuilds `config.json` and
//! the tokenizer files from the metadata. The directory is written atomically.

mod config;
mod load;
mod meta;
mod tensors;
mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::DType;

pub use crate::error::GgufError;
pub use config::Arch;
pub use load::{is_gguf, load_gguf};
pub use tensors::{dequantize, hf_name, permute_rows, unpermute_rows};

use super::weights::SINGLE_FILE;
use crate::atomic::{write_atomically, write_new_file, write_safetensors};
use crate::error::Result;

/// What [`convert_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufSummary {
    pub arch: Arch,
    pub tensors: usize,
    /// Tensor type → number of tensors of that type in the GGUF file.
    pub types: Vec<(String, usize)>,
    pub out: PathBuf,
}

/// Reads the GGUF header and metadata (not the tensor data).
pub fn read_content(path: &Path) -> Result<Content, GgufError> {
    let read_err = |message: String| GgufError::Read {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    Content::read(&mut file).map_err(|e| read_err(explain_type(e.to_string())))
}

/// candle says "unknown dtype for tensor 20"; name the type and what is read.
fn explain_type(message: String) -> String {
    const NAMES: &[(u32, &str)] = &[
        (4, "Q4_2 (removed)"),
        (5, "Q4_3 (removed)"),
        (16, "IQ2_XXS"),
        (17, "IQ2_XS"),
        (18, "IQ3_XXS"),
        (19, "IQ1_S"),
        (20, "IQ4_NL"),
        (21, "IQ3_S"),
        (22, "IQ2_S"),
        (23, "IQ4_XS"),
        (24, "I8"),
        (25, "I16"),
        (26, "I32"),
        (27, "I64"),
        (28, "F64"),
        (29, "IQ1_M"),
        (34, "TQ1_0"),
        (35, "TQ2_0"),
    ];
    // Only the leading number: with RUST_BACKTRACE set, candle appends a backtrace.
    let Some(id) = message
        .strip_prefix("unknown dtype for tensor ")
        .map(|n| {
            n.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|n| n.parse::<u32>().ok())
    else {
        return message;
    };
    let name = NAMES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("unknown", |(_, n)| n);
    format!(
        "tensor type {id} ({name}) is not supported; candle reads F32, F16, BF16, Q4_0, Q4_1, \
         Q5_0, Q5_1, Q8_0, Q8_1 and Q2_K to Q8_K"
    )
}

/// A GGUF file read into Hugging Face form, in memory: `config.json`, the
/// tokenizer files and every tensor (dequantised to `dtype`) by HF name.
pub(crate) struct HfParts {
    pub arch: Arch,
    pub config_json: serde_json::Value,
    pub files: tokenizer::TokenizerFiles,
    pub tensors: HashMap<String, candle_core::Tensor>,
    pub content: Content,
}

pub(crate) fn hf_parts(path: &Path, dtype: DType) -> Result<HfParts> {
    let content = read_content(path)?;
    let meta = meta::Metadata::new(path, &content.metadata);
    let arch = Arch::from_metadata(&meta)?;
    let dims = config::dims(&meta, arch)?;
    let files = tokenizer::tokenizer_files(
        &meta,
        meta.opt_usize(&format!("{}.context_length", arch.key_prefix()))?,
    )?;
    let tensors = tensors::hf_tensors(path, &content, arch, dims, dtype)?;
    let embed = tensors
        .get("model.embed_tokens.weight")
        .ok_or_else(|| GgufError::Tensor {
            path: path.to_path_buf(),
            tensor: "token_embd.weight".into(),
            message: "missing".into(),
        })?;
    let vocab_size = embed.dim(0)?;
    if files.vocab_len > vocab_size {
        return Err(GgufError::BadKey {
            path: path.to_path_buf(),
            key: "tokenizer.ggml.tokens".into(),
            message: format!(
                "{} tokens but token_embd.weight has {vocab_size} rows",
                files.vocab_len
            ),
        }
        .into());
    }
    let facts = config::WeightFacts {
        vocab_size,
        tied: !tensors.contains_key("lm_head.weight"),
        attention_bias: tensors.keys().any(|n| n.ends_with("q_proj.bias")),
    };
    let mut config_json = config::config_json(&meta, arch, &facts)?;
    config_json["torch_dtype"] = match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "float32",
    }
    .into();
    Ok(HfParts {
        arch,
        config_json,
        files,
        tensors,
        content,
    })
}

/// Converts the GGUF file `path` into a Hugging Face model directory `out`
/// (`config.json`, `model.safetensors` in `dtype`, `tokenizer.json`,
/// `tokenizer_config.json`, `generation_config.json`).
pub fn convert_gguf(path: &Path, out: &Path, dtype: DType) -> Result<GgufSummary> {
    let HfParts {
        arch,
        config_json,
        files,
        tensors,
        content,
    } = hf_parts(path, dtype)?;
    let mut types: HashMap<String, usize> = HashMap::new();
    for info in content.tensor_infos.values() {
        *types.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
    }
    let mut types: Vec<_> = types.into_iter().collect();
    types.sort();

    write_atomically(out, |dir| {
        let json_files = [
            ("config.json", &config_json),
            ("tokenizer.json", &files.tokenizer),
            ("tokenizer_config.json", &files.tokenizer_config),
            ("generation_config.json", &files.generation_config),
        ];
        for (name, value) in json_files {
            let file = dir.join(name);
            let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
            write_new_file(&file, (text + "\n").as_bytes())?;
        }
        let file = dir.join(SINGLE_FILE);
        let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
        write_safetensors(&file, &tensors, metadata)
    })?;
    Ok(GgufSummary {
        arch,
        tensors: tensors.len(),
        types,
        out: out.to_path_buf(),
    })
}
