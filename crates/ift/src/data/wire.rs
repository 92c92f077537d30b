//! JSON object → [`Record`]: the format is recognised by its keys, each field is deserialised on
//! its own so that an error can name it (`messages[2].role`), and answers must not be empty.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{DataError, Location};
use super::records::{Message, Record, RecordBody, RecordFormat, Role};
use super::wire_llamafactory::{alpaca, sharegpt_messages, ShareGptMessage};

pub(super) type Object = Map<String, Value>;

/// Keys that identify a format, listed in the error for an unrecognised record.
const KNOWN: &str = "expected `messages`, `conversations`, `prompt`+`completion`, \
    `instruction`+`output`, `prompt`/`conversations`+`chosen`+`rejected`, \
    `messages` or `prompt`+`completion` with `label`, or `text`";

pub(crate) fn parse_record(value: Value, location: Location) -> Result<Record, DataError> {
    let Value::Object(obj) = value else {
        return Err(DataError::Record {
            location,
            message: "a record must be a JSON object".into(),
        });
    };
    let loc = &location;
    let has = |k: &str| obj.contains_key(k);
    let (format, body) = if has("label") {
        let label: bool = required(&obj, "label", loc)?;
        let (prompt, completion, conversational) = if has("messages") {
            let mut messages = messages_field(&obj, "messages", loc)?;
            match messages.pop() {
                Some(last) if last.role == Role::Assistant => (messages, vec![last], true),
                _ => {
                    return Err(DataError::field(
                        loc,
                        "messages",
                        "the last message must be the assistant's answer",
                    ))
                }
            }
        } else {
            let (p, pc) = turns(&obj, "prompt", Role::User, loc)?;
            let (c, cc) = turns(&obj, "completion", Role::Assistant, loc)?;
            (p, c, pc || cc)
        };
        check_answer(
            &completion,
            if has("messages") {
                "messages"
            } else {
                "completion"
            },
            loc,
        )?;
        (
            RecordFormat::Unpaired,
            RecordBody::Unpaired {
                prompt,
                completion,
                label,
                conversational,
            },
        )
    } else if has("chosen") || has("rejected") {
        let sharegpt = has("conversations");
        let (prompt, pc) = if sharegpt {
            (sharegpt_messages(&obj, loc)?, true)
        } else {
            turns(&obj, "prompt", Role::User, loc)?
        };
        let answer = |key: &str| -> Result<(Vec<Message>, bool), DataError> {
            if sharegpt {
                let m: ShareGptMessage = required(&obj, key, loc)?;
                Ok((vec![m.into_message(key, loc)?], true))
            } else {
                turns(&obj, key, Role::Assistant, loc)
            }
        };
        let ((chosen, cc), (rejected, rc)) = (answer("chosen")?, answer("rejected")?);
        check_answer(&chosen, "chosen", loc)?;
        check_answer(&rejected, "rejected", loc)?;
        let format = if sharegpt {
            RecordFormat::ShareGptPreference
        } else {
            RecordFormat::Preference
        };
        (
            format,
            RecordBody::Preference {
                prompt,
                chosen,
                rejected,
                conversational: pc || cc || rc,
            },
        )
    } else if has("messages") {
        let messages = messages_field(&obj, "messages", loc)?;
        check_answer(&messages, "messages", loc)?;
        (
            RecordFormat::Chat,
            RecordBody::Conversation {
                messages,
                conversational: true,
            },
        )
    } else if has("conversations") {
        let messages = sharegpt_messages(&obj, loc)?;
        check_answer(&messages, "conversations", loc)?;
        (
            RecordFormat::ShareGpt,
            RecordBody::Conversation {
                messages,
                conversational: true,
            },
        )
    } else if has("instruction") {
        let messages = alpaca(&obj, loc)?;
        check_answer(&messages, "output", loc)?;
        (
            RecordFormat::Alpaca,
            RecordBody::Conversation {
                messages,
                conversational: true,
            },
        )
    } else if has("prompt") || has("completion") {
        let (mut messages, pc) = turns(&obj, "prompt", Role::User, loc)?;
        let (completion, cc) = turns(&obj, "completion", Role::Assistant, loc)?;
        check_answer(&completion, "completion", loc)?;
        messages.extend(completion);
        (
            RecordFormat::PromptCompletion,
            RecordBody::Conversation {
                messages,
                conversational: pc || cc,
            },
        )
    } else if has("text") {
        let text: String = required(&obj, "text", loc)?;
        if text.trim().is_empty() {
            return Err(DataError::field(loc, "text", "empty text"));
        }
        (RecordFormat::Text, RecordBody::Text { text })
    } else {
        return Err(DataError::Record {
            location,
            message: format!("unrecognised record: {KNOWN}"),
        });
    };
    Ok(Record {
        location,
        format,
        body,
    })
}

pub(super) fn required<T: DeserializeOwned>(
    obj: &Object,
    key: &str,
    loc: &Location,
) -> Result<T, DataError> {
    match obj.get(key) {
        None => Err(DataError::field(loc, key, "missing")),
        Some(v) => T::deserialize(v).map_err(|e| DataError::field(loc, key, e.to_string())),
    }
}

pub(super) fn optional<T: DeserializeOwned>(
    obj: &Object,
    key: &str,
    loc: &Location,
) -> Result<Option<T>, DataError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| DataError::field(loc, key, e.to_string())),
    }
}

/// Every trained answer needs at least one assistant message, and none may be empty.
fn check_answer(messages: &[Message], field: &str, loc: &Location) -> Result<(), DataError> {
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        return Err(DataError::field(
            loc,
            field,
            "no assistant answer to train on",
        ));
    }
    match messages
        .iter()
        .position(|m| m.role == Role::Assistant && m.content.trim().is_empty())
    {
        Some(i) => Err(DataError::field(
            loc,
            format!("{field}[{i}].content"),
            "empty answer",
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct ChatMessage {
    role: String,
    content: String,
}

fn messages_field(obj: &Object, key: &str, loc: &Location) -> Result<Vec<Message>, DataError> {
    let items: Vec<Value> = required(obj, key, loc)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("{key}[{i}]");
            let m = ChatMessage::deserialize(&v)
                .map_err(|e| DataError::field(loc, &name, e.to_string()))?;
            let role = match m.role.as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => {
                    let msg =
                        format!("unknown role {other:?} (expected system, user or assistant)");
                    return Err(DataError::field(loc, format!("{name}.role"), msg));
                }
            };
            Ok(Message {
                role,
                content: m.content,
            })
        })
        .collect()
}

/// `prompt`/`completion`/`chosen`/`rejected`: a string (one message of `role`) or a message list.
fn turns(
    obj: &Object,
    key: &str,
    role: Role,
    loc: &Location,
) -> Result<(Vec<Message>, bool), DataError> {
    match obj.get(key) {
        None => Err(DataError::field(loc, key, "missing")),
        Some(Value::String(s)) => Ok((vec![Message::new(role, s.clone())], false)),
        Some(Value::Array(_)) => {
            let messages = messages_field(obj, key, loc)?;
            if role == Role::Assistant {
                if let Some(i) = messages.iter().position(|m| m.role != Role::Assistant) {
                    return Err(DataError::field(
                        loc,
                        format!("{key}[{i}].role"),
                        "an answer holds only assistant messages",
                    ));
                }
            }
            Ok((messages, true))
        }
        Some(_) => Err(DataError::field(
            loc,
            key,
            "expected a string or a list of messages",
        )),
    }
}
