//! Turns task records into scoring requests: few-shot prefix, raw or chat prompt.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::loglik::Request;
use super::records::{ChoiceRecord, GenerationRecord, SchemaRecord};
use crate::data::{ChatTemplate, Message, Role};
use crate::Result;

/// How prompts are built.
pub struct Prompting<'a> {
    /// Rendered as one user turn plus the generation prompt; `None`: raw text.
    pub chat: Option<&'a ChatTemplate>,
    /// Few-shot prefix, already formatted (ends with a blank line when non-empty).
    pub shots: String,
}

impl Prompting<'_> {
    /// The context for `body`, and the delimiter before the continuation: a
    /// space after raw text (lm-eval's `target_delimiter`), nothing after the
    /// chat template's assistant header.
    pub fn context(&self, body: &str) -> Result<(String, &'static str)> {
        let text = format!("{}{body}", self.shots);
        match self.chat {
            None => Ok((text, " ")),
            Some(t) => {
                let rendered = t
                    .render(&[Message::new(Role::User, text)], true)
                    .map_err(|e| {
                        crate::Error::Train(format!("chat template `{}`: {e}", t.name()))
                    })?;
                Ok((rendered, ""))
            }
        }
    }
}

/// `k` distinct record indices drawn with `seed`: the few-shot pool, never scored.
pub fn fewshot_indices(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    idx.truncate(k.min(n));
    idx
}

pub fn choice_shot(r: &ChoiceRecord) -> String {
    format!("{} {}\n\n", r.query, r.choices[r.gold])
}

pub fn schema_shot(r: &SchemaRecord) -> String {
    format!("{} {}\n\n", r.context_options[r.gold], r.continuation)
}

/// Generation prompts ask for the answer after "Answer:"; shots show the worked
/// solution when the record has one, then the answer.
pub fn generation_body(r: &GenerationRecord) -> String {
    format!("Question: {}\nAnswer:", r.context)
}

pub fn generation_shot(r: &GenerationRecord) -> String {
    let cot = r
        .chain_of_thought
        .as_deref()
        .map(|c| format!(" {c} ="))
        .unwrap_or_default();
    format!("{}{cot} {}\n\n", generation_body(r), r.answer)
}

/// One request per choice.
pub fn choice_requests(p: &Prompting, r: &ChoiceRecord) -> Result<Vec<Request>> {
    let (context, delim) = p.context(&r.query)?;
    Ok(r.choices
        .iter()
        .map(|c| Request {
            context: context.clone(),
            continuation: format!("{delim}{c}"),
        })
        .collect())
}

/// One request per context option, all with the same continuation.
pub fn schema_requests(p: &Prompting, r: &SchemaRecord) -> Result<Vec<Request>> {
    r.context_options
        .iter()
        .map(|c| {
            let (context, delim) = p.context(c)?;
            Ok(Request {
                context,
                continuation: format!("{delim}{}", r.continuation),
            })
        })
        .collect()
}
