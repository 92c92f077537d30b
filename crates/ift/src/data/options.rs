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

impl EncodeOptions {
    /// The range of each length: `(field, message)` of the first out of range
    /// (`RunConfig` names it `data.<field>`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(n) = self.max_length {
            Self::check_max_length(n).map_err(|m| ("max_length", m))?;
        }
        if let Some(n) = self.max_prompt_length {
            let why = "0 would cut every prompt away";
            crate::config::range::count_at_least(n, 1, why)
                .map_err(|m| ("max_prompt_length", m))?;
        }
        Ok(())
    }

    /// The rule of a longest sequence (`data.max_length`, `ift data inspect
    /// --max-length`): room for a token and the token it predicts, or every
    /// example would be dropped.
    pub fn check_max_length(n: usize) -> Result<usize, String> {
        let why = "a token and the next one it predicts; shorter keeps no example";
        crate::config::range::count_at_least(n, 2, why)
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

#[cfg(test)]
mod tests {
    use super::EncodeOptions;

    #[test]
    fn lengths_leave_room_to_train() {
        let with = |max_length, max_prompt_length| {
            EncodeOptions {
                max_length,
                max_prompt_length,
                ..EncodeOptions::default()
            }
            .validate()
        };
        assert_eq!(EncodeOptions::default().validate(), Ok(()));
        assert_eq!(with(None, None), Ok(()));
        assert_eq!(with(Some(2), Some(1)), Ok(()));
        let (field, m) = with(Some(1), None).unwrap_err();
        assert_eq!(field, "max_length");
        assert!(m.starts_with("1 must be at least 2 ("), "{m}");
        assert_eq!(with(Some(0), None).unwrap_err().0, "max_length");
        let (field, m) = with(Some(16), Some(0)).unwrap_err();
        assert_eq!(field, "max_prompt_length");
        assert!(m.starts_with("0 must be at least 1 ("), "{m}");
    }
}
