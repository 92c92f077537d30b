//! Options of encoding and loading, with their defaults (the `Default` impls are the only source).

use serde::{Deserialize, Serialize};

use super::reader::DataFormat;
use super::template::TemplateOptions;

/// Which end of an over-long prompt survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptTruncation {
    /// Keep the first tokens (the system prompt and BOS survive).
    KeepStart,
    /// Keep the last tokens, nearest the answer (TRL's default; BOS may be cut).
    #[default]
    KeepEnd,
}

/// Which assistant turns of a conversation are trained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainOn {
    /// Every assistant turn.
    #[default]
    AllAssistantTurns,
    /// Only the final assistant turn; earlier ones are context.
    LastAssistantTurn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeOptions {
    /// Longest sequence in tokens, prompt and answer together; `None`: no limit.
    /// Default 1024, TRL's default, which fits small models' context and a CPU's memory.
    pub max_length: Option<usize>,
    /// Longest prompt in tokens, cut before `max_length` is applied; `None` (default): no limit.
    pub max_prompt_length: Option<usize>,
    /// Which end of a prompt longer than `max_prompt_length` is kept. Default: keep the end.
    pub prompt_truncation: PromptTruncation,
    /// Which assistant turns are trained (default: all). Preference and KTO records always
    /// train only their answer.
    pub train_on: TrainOn,
    /// Also train on the prompt tokens (system, user and template text). Default false: the
    /// model should learn to answer, not to write user turns.
    pub train_on_prompt: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            max_length: Some(1024),
            max_prompt_length: None,
            prompt_truncation: PromptTruncation::KeepEnd,
            train_on: TrainOn::AllAssistantTurns,
            train_on_prompt: false,
        }
    }
}

/// Everything [`super::load_dataset`] needs besides the file and the tokenizer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadOptions {
    /// File syntax (default: recognised from the content).
    pub format: DataFormat,
    /// Chat template choice (default: the tokenizer's, no fallback).
    pub template: TemplateOptions,
    /// Masks and truncation.
    pub encode: EncodeOptions,
}
