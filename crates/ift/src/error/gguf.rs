//! What can go wrong reading a GGUF file; every variant names the file and the
//! metadata key or tensor at fault.

use std::path::PathBuf;

/// Errors from [`crate::model::gguf::convert_gguf`].
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file is not a GGUF file candle can read (bad magic, truncated, or a
    /// tensor type candle's quantized module does not know).
    #[error("{path}: not a readable GGUF file: {message}")]
    Read { path: PathBuf, message: String },
    /// A tensor's data could not be read or dequantised.
    #[error("{path}: tensor `{tensor}`: {message}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    /// A required metadata key is absent.
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    /// A metadata key has the wrong type or an unusable value.
    #[error("{path}: metadata key `{key}`: {message}")]
    BadKey {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// `general.architecture` names a model we cannot convert.
    #[error("{path}: architecture `{arch}` is not supported (supported: llama, qwen2)")]
    Architecture { path: PathBuf, arch: String },
    /// `tokenizer.ggml.pre` (or `.model`) names a tokenizer we do not rebuild.
    /// Never guessed: a wrong pre-tokenizer silently changes every token id.
    #[error("{path}: `{key}` = `{value}` is not supported (supported: {supported})")]
    Tokenizer {
        path: PathBuf,
        key: String,
        value: String,
        supported: String,
    },
}
