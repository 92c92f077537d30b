//! A Hugging Face tokenizer directory: `tokenizer.json` plus what `transformers` keeps beside it
//! (special tokens, chat templates), read once and exposed as plain values.
//!
//! `encode(text, true)` gives exactly what `tokenizer(text).input_ids` gives in Python: the
//! tokenizer's own post-processor decides whether a BOS is added, never this module.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a tokenizer directory could not be loaded or used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer file {path} not found (a model directory needs tokenizer.json)")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid tokenizer file {path}: {source}")]
    Invalid {
        path: PathBuf,
        #[source]
        source: tokenizers::Error,
    },
    #[error("invalid {path}: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("tokenizer {path}: {op} failed: {source}")]
    Codec {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: tokenizers::Error,
    },
}

/// One tokenized string: ids and, for each id, the byte span of `text` it came from
/// (`(0, 0)` for tokens the post-processor inserted, such as BOS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedText {
    pub ids: Vec<u32>,
    pub offsets: Vec<(usize, usize)>,
}

/// `tokenizer_config.json` / `special_tokens_map.json`: only the keys we use; the rest is ignored
/// because these files carry many library-specific keys.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    chat_template: Option<TemplateField>,
    bos_token: Option<TokenField>,
    eos_token: Option<TokenField>,
    pad_token: Option<TokenField>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

/// A special token is written either as its text or as a serialised `AddedToken` object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenField {
    Text(String),
    Added { content: String },
}

impl TokenField {
    fn into_string(self) -> String {
        match self {
            TokenField::Text(s) | TokenField::Added { content: s } => s,
        }
    }
}

/// A loaded tokenizer with its special tokens and chat templates.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    bos: Option<String>,
    eos: Option<String>,
    pad: Option<String>,
    add_bos_token: Option<bool>,
    add_eos_token: Option<bool>,
    /// `(name, template)`; an unnamed template is stored as `"default"`, as transformers does.
    templates: Vec<(String, String)>,
}

impl HfTokenizer {
    /// Reads `dir/tokenizer.json` (required) and, when present, `tokenizer_config.json`,
    /// `special_tokens_map.json` (fallback for special tokens), `chat_template.jinja` and
    /// `additional_chat_templates/*.jinja` (where transformers ≥ 4.43 saves templates).
    pub fn from_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TokenizerError::Missing { path })
            }
            Err(source) => return Err(TokenizerError::Read { path, source }),
        };
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|source| {
            TokenizerError::Invalid {
                path: path.clone(),
                source,
            }
        })?;
        // transformers turns off any truncation/padding saved in tokenizer.json unless asked.
        inner
            .with_truncation(None)
            .map_err(|source| TokenizerError::Invalid {
                path: path.clone(),
                source,
            })?;
        inner.with_padding(None);

        let config = read_config(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
        let map = read_config(&dir.join("special_tokens_map.json"))?.unwrap_or_default();
        let mut templates = match config.chat_template {
            Some(TemplateField::One(t)) => vec![("default".to_string(), t)],
            Some(TemplateField::Named(list)) => {
                list.into_iter().map(|n| (n.name, n.template)).collect()
            }
            None => Vec::new(),
        };
        // A separate template file wins over the config key, as in transformers.
        if let Some(t) = read_optional(&dir.join("chat_template.jinja"))? {
            templates.retain(|(n, _)| n != "default");
            templates.insert(0, ("default".to_string(), t));
        }
        templates.extend(read_extra_templates(
            &dir.join("additional_chat_templates"),
        )?);
        let pick =
            |a: Option<TokenField>, b: Option<TokenField>| a.or(b).map(TokenField::into_string);
        Ok(Self {
            inner,
            path,
            bos: pick(config.bos_token, map.bos_token),
            eos: pick(config.eos_token, map.eos_token),
            pad: pick(config.pad_token, map.pad_token),
            add_bos_token: config.add_bos_token,
            add_eos_token: config.add_eos_token,
            templates,
        })
    }

    /// Largest id the tokenizer can produce + 1, added tokens included.
    pub fn vocab_size(&self) -> usize {
        let vocab: HashMap<String, u32> = self.inner.get_vocab(true);
        vocab.values().max().map_or(0, |&m| m as usize + 1)
    }

    /// Tokenizes `text` like `tokenizer(text, add_special_tokens=...)`; offsets are byte offsets.
    pub fn encode(
        &self,
        text: &str,
        add_special_tokens: bool,
    ) -> Result<TokenizedText, TokenizerError> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|source| self.codec_error("encoding", source))?;
        Ok(TokenizedText {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|source| self.codec_error("decoding", source))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_deref()
    }
    pub fn eos_token(&self) -> Option<&str> {
        self.eos.as_deref()
    }
    pub fn pad_token(&self) -> Option<&str> {
        self.pad.as_deref()
    }
    pub fn bos_token_id(&self) -> Option<u32> {
        self.bos.as_deref().and_then(|t| self.token_to_id(t))
    }
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos.as_deref().and_then(|t| self.token_to_id(t))
    }
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad.as_deref().and_then(|t| self.token_to_id(t))
    }
    /// `add_bos_token` from `tokenizer_config.json`, if set (informative: the post-processor in
    /// `tokenizer.json` is what actually adds BOS).
    pub fn add_bos_token(&self) -> Option<bool> {
        self.add_bos_token
    }
    pub fn add_eos_token(&self) -> Option<bool> {
        self.add_eos_token
    }

    /// The named chat template, or the default one for `None`.
    pub fn chat_template(&self, name: Option<&str>) -> Option<&str> {
        let name = name.unwrap_or("default");
        self.templates
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The `tokenizer.json` this was read from (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    fn codec_error(&self, op: &'static str, source: tokenizers::Error) -> TokenizerError {
        TokenizerError::Codec {
            path: self.path.clone(),
            op,
            source,
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, TokenizerError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenizerError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>, TokenizerError> {
    let Some(text) = read_optional(path)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TokenizerError::Config {
            path: path.to_path_buf(),
            source,
        })
}

/// `additional_chat_templates/<name>.jinja`, sorted by name so the order is reproducible.
fn read_extra_templates(dir: &Path) -> Result<Vec<(String, String)>, TokenizerError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TokenizerError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| TokenizerError::Read {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        let (Some(stem), Some("jinja")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if let Some(text) = read_optional(&path)? {
            out.push((stem.to_string(), text));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[path = "tokenizer_tests.rs"]
mod tests;
