//! Whole files: read, encode every record, and count what truncation dropped.

use std::fmt;
use std::path::{Path, PathBuf};

use super::encode::{encode_preference, encode_record, encode_unpaired};
use super::encode::{EncodedExample, EncodedKto, EncodedPreference};
use super::error::DataError;
use super::options::{EncodeOptions, LoadOptions};
use super::reader::load_records;
use super::records::Record;
use super::template::ChatTemplate;
use crate::tokenizer::HfTokenizer;

/// What loading a file did; printed at the end of loading so nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub path: PathBuf,
    /// Records in the file.
    pub records: usize,
    /// Records kept (encoded with at least one trained token).
    pub kept: usize,
    /// Records dropped because truncation cut their whole answer.
    pub dropped_truncated: usize,
    /// `max_length` in force, for the message.
    pub max_length: Option<usize>,
    /// Tokens across the kept sequences (both sides of a preference pair).
    pub tokens: usize,
    /// Trained tokens across the kept sequences.
    pub trained_tokens: usize,
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} records, {} kept, {} dropped (answer entirely cut by truncation, max_length {}); \
             {} tokens, {} trained",
            self.path.display(),
            self.records,
            self.kept,
            self.dropped_truncated,
            self.max_length.map_or("none".to_string(), |m| m.to_string()),
            self.tokens,
            self.trained_tokens
        )
    }
}

/// Text and conversation records (chat, prompt/completion, Alpaca, ShareGPT, text), for SFT,
/// IFT and scoring.
pub fn load_dataset(
    path: &Path,
    tok: &HfTokenizer,
    opts: &LoadOptions,
) -> Result<(Vec<EncodedExample>, LoadSummary), DataError> {
    load_with(path, tok, opts, |r, tok, t, o| {
        Ok(encode_record(r, tok, t, o)?.map(|e| (e.len(), e.num_trained(), e)))
    })
}

/// Paired preference records (DPO, ORPO, ...).
pub fn load_preference_dataset(
    path: &Path,
    tok: &HfTokenizer,
    opts: &LoadOptions,
) -> Result<(Vec<EncodedPreference>, LoadSummary), DataError> {
    load_with(path, tok, opts, |r, tok, t, o| {
        Ok(encode_preference(r, tok, t, o)?.map(|p| {
            let len = p.chosen.len() + p.rejected.len();
            (len, p.chosen.num_trained() + p.rejected.num_trained(), p)
        }))
    })
}

/// Unpaired preference records (KTO).
pub fn load_kto_dataset(
    path: &Path,
    tok: &HfTokenizer,
    opts: &LoadOptions,
) -> Result<(Vec<EncodedKto>, LoadSummary), DataError> {
    load_with(path, tok, opts, |r, tok, t, o| {
        Ok(encode_unpaired(r, tok, t, o)?.map(|k| (k.example.len(), k.example.num_trained(), k)))
    })
}

type EncodeFn<T> = fn(
    &Record,
    &HfTokenizer,
    Option<&ChatTemplate>,
    &EncodeOptions,
) -> Result<Option<(usize, usize, T)>, DataError>;

fn load_with<T>(
    path: &Path,
    tok: &HfTokenizer,
    opts: &LoadOptions,
    encode: EncodeFn<T>,
) -> Result<(Vec<T>, LoadSummary), DataError> {
    let records = load_records(path, opts.format)?;
    let template = ChatTemplate::for_tokenizer(tok, &opts.template)?;
    let mut summary = LoadSummary {
        path: path.to_path_buf(),
        records: records.len(),
        max_length: opts.encode.max_length,
        ..LoadSummary::default()
    };
    let mut out = Vec::with_capacity(records.len());
    for record in &records {
        match encode(record, tok, template.as_ref(), &opts.encode)? {
            Some((tokens, trained, item)) => {
                summary.kept += 1;
                summary.tokens += tokens;
                summary.trained_tokens += trained;
                out.push(item);
            }
            None => summary.dropped_truncated += 1,
        }
    }
    Ok((out, summary))
}
