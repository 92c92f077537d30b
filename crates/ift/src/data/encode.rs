//! Records → token ids and loss masks, truncated: the entry points for training and scoring.

use super::error::{DataError, Location};
use super::mask::{mask_conversation, mask_text, MaskedText};
use super::options::{EncodeOptions, TrainOn};
use super::records::{Message, Record, RecordBody, Role};
use super::template::ChatTemplate;
use super::truncate::truncate;
use crate::tokenizer::HfTokenizer;

/// One training sequence. `loss_mask[i]` marks token `i` as a target (predicted from the tokens
/// before it); `loss_mask[0]` is always false, so the trained-token count is the number of trues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedExample {
    pub input_ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
}

impl EncodedExample {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
    pub fn num_trained(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }
}

/// A chosen and a rejected answer to the same prompt, each a full sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPreference {
    pub chosen: EncodedExample,
    pub rejected: EncodedExample,
}

/// One KTO example: a sequence and whether its answer is desirable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedKto {
    pub example: EncodedExample,
    pub label: bool,
}

/// Renders and masks a text or conversation record without truncating it.
/// `template` is the model's (or fallback) chat template; `None` allows only plain records.
pub fn mask_record(
    record: &Record,
    tok: &HfTokenizer,
    template: Option<&ChatTemplate>,
    opts: &EncodeOptions,
) -> Result<MaskedText, DataError> {
    let loc = &record.location;
    match &record.body {
        RecordBody::Text { text } => mask_text(text, tok, loc),
        RecordBody::Conversation {
            messages,
            conversational,
        } => {
            let from = match opts.train_on {
                TrainOn::AllAssistantTurns => 0,
                TrainOn::LastAssistantTurn => messages
                    .iter()
                    .rposition(|m| m.role == Role::Assistant)
                    .unwrap_or(0),
            };
            with_template(template, *conversational, tok, loc, |t| {
                mask_conversation(messages, from, t, tok, opts.train_on_prompt, loc)
            })
        }
        other => Err(wrong_kind(loc, other, "text or conversation")),
    }
}

/// A text or conversation record, truncated; `None` when truncation cut its whole answer.
pub fn encode_record(
    record: &Record,
    tok: &HfTokenizer,
    template: Option<&ChatTemplate>,
    opts: &EncodeOptions,
) -> Result<Option<EncodedExample>, DataError> {
    Ok(truncate(&mask_record(record, tok, template, opts)?, opts))
}

/// A paired preference record; `None` when truncation cut either answer entirely.
pub fn encode_preference(
    record: &Record,
    tok: &HfTokenizer,
    template: Option<&ChatTemplate>,
    opts: &EncodeOptions,
) -> Result<Option<EncodedPreference>, DataError> {
    let loc = &record.location;
    let RecordBody::Preference {
        prompt,
        chosen,
        rejected,
        conversational,
    } = &record.body
    else {
        return Err(wrong_kind(loc, &record.body, "preference"));
    };
    let side = |answer: &[Message]| {
        with_template(template, *conversational, tok, loc, |t| {
            answer_only(prompt, answer, t, tok, opts, loc)
        })
    };
    Ok(match (side(chosen)?, side(rejected)?) {
        (Some(chosen), Some(rejected)) => Some(EncodedPreference { chosen, rejected }),
        _ => None,
    })
}

/// An unpaired (KTO) record; `None` when truncation cut its whole answer.
pub fn encode_unpaired(
    record: &Record,
    tok: &HfTokenizer,
    template: Option<&ChatTemplate>,
    opts: &EncodeOptions,
) -> Result<Option<EncodedKto>, DataError> {
    let loc = &record.location;
    let RecordBody::Unpaired {
        prompt,
        completion,
        label,
        conversational,
    } = &record.body
    else {
        return Err(wrong_kind(loc, &record.body, "unpaired preference"));
    };
    let example = with_template(template, *conversational, tok, loc, |t| {
        answer_only(prompt, completion, t, tok, opts, loc)
    })?;
    Ok(example.map(|example| EncodedKto {
        example,
        label: *label,
    }))
}

/// `prompt` followed by `answer`, training only the answer (whatever `train_on` says).
fn answer_only(
    prompt: &[Message],
    answer: &[Message],
    template: &ChatTemplate,
    tok: &HfTokenizer,
    opts: &EncodeOptions,
    loc: &Location,
) -> Result<Option<EncodedExample>, DataError> {
    let messages: Vec<Message> = prompt.iter().chain(answer).cloned().collect();
    let masked = mask_conversation(
        &messages,
        prompt.len(),
        template,
        tok,
        opts.train_on_prompt,
        loc,
    )?;
    Ok(truncate(&masked, opts))
}

/// Runs `f` with the model's template, or with the plain rendering for a record written with
/// plain strings; a conversational record on a model without a template is an error.
fn with_template<T>(
    template: Option<&ChatTemplate>,
    conversational: bool,
    tok: &HfTokenizer,
    loc: &Location,
    f: impl FnOnce(&ChatTemplate) -> Result<T, DataError>,
) -> Result<T, DataError> {
    match template {
        Some(t) => f(t),
        None if !conversational => f(&ChatTemplate::plain(tok)),
        None => Err(DataError::NoChatTemplate {
            location: loc.clone(),
            tokenizer: tok.path().to_path_buf(),
            name: None,
        }),
    }
}

fn wrong_kind(loc: &Location, body: &RecordBody, expected: &'static str) -> DataError {
    DataError::WrongKind {
        location: loc.clone(),
        found: body.kind_name(),
        expected,
    }
}
