//! A Hugging Face model directory as a whole: the model, its tokenizer, and
//! the check that the two fit together.

use std::path::{Path, PathBuf};

use candle_core::Device;

use super::llama::LlamaForCausalLM;
use super::params::Trainable;
use super::save::SaveOptions;
use crate::error::{Error, Result};
use crate::tokenizer::HfTokenizer;

/// A model directory loaded: weights, config and tokenizer.
pub struct Pretrained {
    pub model: LlamaForCausalLM,
    pub tokenizer: HfTokenizer,
    /// Where it was loaded from; its tokenizer files are copied on save.
    pub dir: PathBuf,
}

impl Pretrained {
    /// Loads `dir` (`config.json`, safetensors, `tokenizer.json`, ...).
    ///
    /// A tokenizer that can produce ids beyond the model's vocabulary is an
    /// error; a vocabulary larger than the tokenizer's (padded embedding
    /// matrices, as Qwen2 has) is normal.
    pub fn load(dir: &Path, trainable: &Trainable, device: &Device) -> Result<Self> {
        let tokenizer = HfTokenizer::from_dir(dir)?;
        let model = LlamaForCausalLM::from_pretrained(dir, trainable, device)?;
        check_vocab(&tokenizer, &model, dir)?;
        Ok(Pretrained {
            model,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }

    /// Saves the model as a Hugging Face directory with this tokenizer's files.
    pub fn save(&self, out: &Path, options: &SaveOptions) -> Result<()> {
        let options = SaveOptions {
            companions_from: options
                .companions_from
                .clone()
                .or_else(|| Some(self.dir.clone())),
            ..options.clone()
        };
        self.model.save_pretrained(out, &options)
    }
}

/// Refuses a tokenizer that can emit ids the model has no embedding for.
/// Refuses a second model (a reference) whose directory's tokenizer maps
/// tokens to ids otherwise than the policy's `tokenizer` does: its
/// log-probabilities would be of other tokens. A directory without
/// `tokenizer.json` is not checked.
pub fn check_same_tokenizer(tokenizer: &HfTokenizer, dir: &Path, what: &str) -> Result<()> {
    if !dir.join("tokenizer.json").is_file() {
        return Ok(());
    }
    let other = HfTokenizer::from_dir(dir)?;
    let (a, b) = (
        tokenizer.inner().get_vocab(true),
        other.inner().get_vocab(true),
    );
    let mut differs: Option<(String, String)> = None;
    let mut tokens: Vec<(&String, &u32)> = a.iter().collect();
    tokens.sort_by_key(|(_, id)| **id);
    for (token, id) in tokens {
        match b.get(token) {
            Some(other_id) if other_id == id => {}
            Some(other_id) => {
                differs = Some((format!("`{token}` is id {id}"), format!("id {other_id}")));
                break;
            }
            None => {
                differs = Some((format!("`{token}` is id {id}"), "absent".into()));
                break;
            }
        }
    }
    if differs.is_none() && a.len() != b.len() {
        differs = Some((format!("{} tokens", a.len()), format!("{} tokens", b.len())));
    }
    match differs {
        None => Ok(()),
        Some((policy, reference)) => Err(Error::Tokenizer {
            dir: dir.to_path_buf(),
            message: format!(
                "{what}'s tokenizer is not the policy's ({}): {policy} in the policy's, {reference} in this one; {what} must share the policy's tokenizer",
                tokenizer.path().display()
            ),
        }),
    }
}

pub fn check_vocab(tokenizer: &HfTokenizer, model: &LlamaForCausalLM, dir: &Path) -> Result<()> {
    let (tok, vocab) = (tokenizer.vocab_size(), model.config.vocab_size);
    if tok > vocab {
        return Err(Error::Tokenizer {
            dir: dir.to_path_buf(),
            message: format!(
                "the tokenizer can produce ids up to {} but config.json's vocab_size is {vocab}",
                tok - 1
            ),
        });
    }
    Ok(())
}
