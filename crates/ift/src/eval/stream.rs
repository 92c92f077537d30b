//! What streaming generation needs beyond the token loop: the ids that end a
//! turn, and text decoded piece by piece as tokens arrive.

use std::path::Path;

use crate::tokenizer::HfTokenizer;
use crate::{Error, Result};

/// The ids a model ends a turn with: the tokenizer's EOS plus every
/// `eos_token_id` of `generation_config.json` (an int or a list; chat models
/// list their end-of-turn token there), as transformers' `generate` stops on.
pub fn default_stop_ids(dir: &Path, tokenizer: &HfTokenizer) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = tokenizer.eos_token_id().into_iter().collect();
    let path = dir.join("generation_config.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        let listed = match &json["eos_token_id"] {
            serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_u64()).collect(),
            v => v.as_u64().into_iter().collect::<Vec<_>>(),
        };
        ids.extend(listed.into_iter().map(|v| v as u32));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Decodes a growing id list and hands out only the new text. Byte-level
/// tokenizers can split one character across tokens, so the whole list is
/// decoded each time and text ending in an unfinished character (U+FFFD) is
/// held back until the next token completes it.
#[derive(Debug, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    printed: usize,
}

impl TextStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id`; returns the text it completes (possibly empty).
    pub fn push(&mut self, tok: &HfTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = tok.decode(&self.ids, true)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        Ok(self.take_new(&text))
    }

    /// Whatever is still held back, at the end of a generation.
    pub fn finish(&mut self, tok: &HfTokenizer) -> Result<String> {
        let text = tok.decode(&self.ids, true)?;
        Ok(self.take_new(&text))
    }

    /// The full text decoded so far.
    pub fn text(&self, tok: &HfTokenizer) -> Result<String> {
        Ok(tok.decode(&self.ids, true)?)
    }

    fn take_new(&mut self, text: &str) -> String {
        // A decoder may rewrite earlier text (e.g. spacing cleanup); print only
        // past what was printed, on a character boundary.
        let start = self.printed.min(text.len());
        if !text.is_char_boundary(start) {
            return String::new();
        }
        self.printed = text.len();
        text[start..].to_string()
    }
}
