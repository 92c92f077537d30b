//! The typed, format-independent record every input format is converted into.

use serde::Serialize;

use super::error::Location;

/// A chat role. Formats with other names (ShareGPT's `human`/`gpt`) are mapped onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message, serialised for templates as `{"role": ..., "content": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// The input format a record was recognised as (by its keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    Chat,
    PromptCompletion,
    Alpaca,
    ShareGpt,
    Preference,
    ShareGptPreference,
    Unpaired,
    Text,
}

/// What a record holds. `conversational` is false when the record was written with plain
/// strings (`prompt`/`completion` as text): such a record can be trained without a chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordBody {
    /// Every token is trained.
    Text { text: String },
    /// A conversation; its assistant turns are trained.
    Conversation {
        messages: Vec<Message>,
        conversational: bool,
    },
    /// Paired preference: two answers (assistant messages) to one prompt.
    Preference {
        prompt: Vec<Message>,
        chosen: Vec<Message>,
        rejected: Vec<Message>,
        conversational: bool,
    },
    /// Unpaired preference (KTO): one answer labelled desirable (`true`) or not.
    Unpaired {
        prompt: Vec<Message>,
        completion: Vec<Message>,
        label: bool,
        conversational: bool,
    },
}

impl RecordBody {
    /// A short name for messages ("text", "conversation", ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            RecordBody::Text { .. } => "text",
            RecordBody::Conversation { .. } => "conversation",
            RecordBody::Preference { .. } => "preference",
            RecordBody::Unpaired { .. } => "unpaired preference",
        }
    }
}

/// One input record with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub location: Location,
    pub format: RecordFormat,
    pub body: RecordBody,
}
