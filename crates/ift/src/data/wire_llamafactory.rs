//! The LLaMA-Factory layouts: ShareGPT (`conversations` of `{from, value}`) and Alpaca
//! (`instruction`, `input`, `output`, optional `system` and `history`).

use serde::Deserialize;
use serde_json::Value;

use super::error::{DataError, Location};
use super::records::{Message, Role};
use super::wire::{optional, required, Object};

#[derive(Deserialize)]
pub(super) struct ShareGptMessage {
    from: String,
    value: String,
}

impl ShareGptMessage {
    pub(super) fn into_message(self, field: &str, loc: &Location) -> Result<Message, DataError> {
        let role = match self.from.as_str() {
            "system" => Role::System,
            "human" | "user" => Role::User,
            "gpt" | "assistant" => Role::Assistant,
            other => {
                let msg = format!("unknown role {other:?} (expected system, human or gpt)");
                return Err(DataError::field(loc, format!("{field}.from"), msg));
            }
        };
        Ok(Message {
            role,
            content: self.value,
        })
    }
}

/// ShareGPT `conversations`, with an optional top-level `system` prompt (LLaMA-Factory's layout).
pub(super) fn sharegpt_messages(obj: &Object, loc: &Location) -> Result<Vec<Message>, DataError> {
    let items: Vec<Value> = required(obj, "conversations", loc)?;
    let mut out: Vec<Message> = optional::<String>(obj, "system", loc)?
        .map(|s| Message::new(Role::System, s))
        .into_iter()
        .collect();
    for (i, v) in items.into_iter().enumerate() {
        let name = format!("conversations[{i}]");
        let m = ShareGptMessage::deserialize(&v)
            .map_err(|e| DataError::field(loc, &name, e.to_string()))?;
        out.push(m.into_message(&name, loc)?);
    }
    Ok(out)
}

/// Alpaca: the user turn is `instruction`, then `input` on a new line when not empty (as
/// LLaMA-Factory joins them); `history` holds earlier `[instruction, answer]` pairs.
pub(super) fn alpaca(obj: &Object, loc: &Location) -> Result<Vec<Message>, DataError> {
    let instruction: String = required(obj, "instruction", loc)?;
    let input: String = optional(obj, "input", loc)?.unwrap_or_default();
    let output: String = required(obj, "output", loc)?;
    let mut out = Vec::new();
    if let Some(system) = optional::<String>(obj, "system", loc)? {
        out.push(Message::new(Role::System, system));
    }
    for (q, a) in optional::<Vec<(String, String)>>(obj, "history", loc)?.unwrap_or_default() {
        out.extend([
            Message::new(Role::User, q),
            Message::new(Role::Assistant, a),
        ]);
    }
    let user = if input.is_empty() {
        instruction
    } else {
        format!("{instruction}\n{input}")
    };
    out.extend([
        Message::new(Role::User, user),
        Message::new(Role::Assistant, output),
    ]);
    Ok(out)
}
