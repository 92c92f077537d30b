//! Rendering a conversation and marking its trained tokens.
//!
//! The text is rendered once and tokenized once (tokenizing prompt and answer apart and joining
//! them changes BPE merges at the join). The answer spans are found by rendering prefixes: the
//! rendering of `messages[..i]` and of `messages[..=i]` must both be prefixes of the full text, and
//! assistant turn `i` lies between them. Its content is located there (after the generation
//! prompt when that is a prefix of the turn), and a token is trained when
//! its byte span overlaps the content, plus the tokens after the content up to and including the
//! turn's first special token (the end-of-turn / EOS token the model must learn to emit).

use super::error::{DataError, Location};
use super::records::{Message, Role};
use super::template::ChatTemplate;
use crate::tokenizer::HfTokenizer;

/// A rendered, tokenized record before truncation (what `ift data inspect` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedText {
    pub text: String,
    pub input_ids: Vec<u32>,
    /// Byte span of `text` per token; `(0, 0)` for tokens the post-processor inserted.
    pub offsets: Vec<(usize, usize)>,
    /// `loss_mask[i]`: token `i` is a training target. Always false at 0 (nothing predicts it).
    pub loss_mask: Vec<bool>,
    /// Index of the first token of the first trained answer: the tokens before it are the prompt.
    pub answer_start: usize,
}

/// Byte ranges of one assistant turn in the rendered text.
struct TurnSpan {
    content_start: usize,
    content_end: usize,
    turn_end: usize,
}

/// Renders `messages` and masks the assistant turns at index `>= trained_from` (all tokens when
/// `train_on_prompt`).
pub fn mask_conversation(
    messages: &[Message],
    trained_from: usize,
    template: &ChatTemplate,
    tok: &HfTokenizer,
    train_on_prompt: bool,
    location: &Location,
) -> Result<MaskedText, DataError> {
    let render = |msgs: &[Message]| {
        template
            .render(msgs, false)
            .map_err(|source| DataError::Render {
                location: location.clone(),
                name: template.name().to_string(),
                source,
            })
    };
    let shape = |message: String| DataError::TemplateShape {
        location: location.clone(),
        name: template.name().to_string(),
        message,
    };
    let full = render(messages)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate().skip(trained_from) {
        if m.role != Role::Assistant {
            continue;
        }
        // An empty list may not render at all (templates index messages[0]); nothing precedes it.
        let before = if i == 0 {
            String::new()
        } else {
            render(&messages[..i])?
        };
        let upto = render(&messages[..=i])?;
        if !full.starts_with(&upto) || !upto.starts_with(&before) {
            return Err(shape(format!(
                "rendering messages 0..={i} is not a prefix of the whole conversation, so the \
                 template rewrites earlier turns and assistant spans cannot be located"
            )));
        }
        // Search after the generation prompt (the turn header) when it is a prefix of the turn,
        // so that a short answer such as "a" is not found inside "assistant". It is only a hint:
        // a template that cannot render it falls back to the start of the turn.
        let header = template.render(&messages[..i], true).ok();
        let from = header
            .filter(|h| h.len() >= before.len() && upto.starts_with(h.as_str()))
            .map_or(before.len(), |h| h.len());
        let needle = m.content.trim();
        let Some(pos) = upto[from..].find(needle) else {
            return Err(shape(format!(
                "the content of message {i} does not appear in its rendered turn"
            )));
        };
        let content_start = from + pos;
        spans.push(TurnSpan {
            content_start,
            content_end: content_start + needle.len(),
            turn_end: upto.len(),
        });
    }
    let enc = tok
        .encode(&full, template.adds_special_tokens())
        .map_err(|source| DataError::Tokenizer {
            location: location.clone(),
            source,
        })?;
    let added = tok
        .inner()
        .get_added_vocabulary()
        .get_added_tokens_decoder();
    let is_special = |id: u32| added.get(&id).is_some_and(|t| t.special);
    let mut loss_mask = vec![train_on_prompt; enc.ids.len()];
    for span in &spans {
        for (k, &(s, e)) in enc.offsets.iter().enumerate() {
            if e <= s || e <= span.content_start {
                continue;
            }
            if s >= span.turn_end {
                break;
            }
            loss_mask[k] = true;
            if s >= span.content_end && is_special(enc.ids[k]) {
                break;
            }
        }
    }
    let answer_start = spans
        .first()
        .and_then(|span| {
            enc.offsets
                .iter()
                .position(|&(s, e)| e > s && e > span.content_start)
        })
        .unwrap_or(enc.ids.len());
    if let Some(first) = loss_mask.first_mut() {
        *first = false;
    }
    Ok(MaskedText {
        text: full,
        input_ids: enc.ids,
        offsets: enc.offsets,
        loss_mask,
        answer_start,
    })
}

/// A plain text, tokenized as `tokenizer(text)`; every token but the first is trained.
pub fn mask_text(
    text: &str,
    tok: &HfTokenizer,
    location: &Location,
) -> Result<MaskedText, DataError> {
    let enc = tok
        .encode(text, true)
        .map_err(|source| DataError::Tokenizer {
            location: location.clone(),
            source,
        })?;
    let mut loss_mask = vec![true; enc.ids.len()];
    if let Some(first) = loss_mask.first_mut() {
        *first = false;
    }
    Ok(MaskedText {
        text: text.to_string(),
        input_ids: enc.ids,
        offsets: enc.offsets,
        loss_mask,
        answer_start: 0,
    })
}
