//! Generation tasks: greedy answers, batched, cut at a stop string, scored by
//! exact match on the answer's last number (or its normalised text).

use super::prompt::{self, Prompting};
use super::records::GenerationRecord;
use super::rules::exact_match;
use super::run::{EvalOptions, Evaluator, GenerationSample};
use crate::eval::{generate, GenerateOptions};
use crate::Result;

/// What raw-text generation stops at by default: the blank line that ends a
/// few-shot answer, and the next question a base model starts to write
/// itself (as lm-eval's GSM8K task). With `--chat` there is none by default:
/// the model ends its turn with a stop token, and a worked answer may span
/// paragraphs.
pub const DEFAULT_STOP: [&str; 2] = ["\n\n", "Question:"];

/// The stop strings of a run: `o.stop` when given, else the mode's default.
pub fn stop_strings(o: &EvalOptions) -> Vec<String> {
    match (&o.stop, o.chat) {
        (Some(s), _) => s.clone(),
        (None, false) => DEFAULT_STOP.iter().map(|s| s.to_string()).collect(),
        (None, true) => Vec::new(),
    }
}

/// The answer: the text before the first stop string, trimmed.
pub fn cut_at_stop<'t>(text: &'t str, stop: &[String]) -> &'t str {
    let end = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..end].trim()
}

/// Greedy answers to `scored`, `o.batch_size` prompts at a time, each scored
/// by exact match.
pub fn answers(
    ev: &Evaluator,
    p: &Prompting,
    scored: &[&GenerationRecord],
    specials: bool,
    o: &EvalOptions,
    progress: &mut impl FnMut(usize, usize),
) -> Result<Vec<GenerationSample>> {
    let mut stop_token_ids = o.stop_token_ids.clone();
    stop_token_ids.extend(ev.tokenizer.eos_token_id());
    let stop = stop_strings(o);
    let opts = GenerateOptions {
        max_new_tokens: o.max_new_tokens,
        stop_token_ids,
        stop_strings: stop.clone(),
        ..GenerateOptions::default()
    };
    let mut out = Vec::with_capacity(scored.len());
    for chunk in scored.chunks(o.batch_size.max(1)) {
        crate::interrupt::check("evaluation")?;
        let prompts = chunk
            .iter()
            .map(|r| {
                let (context, _) = p.context(&prompt::generation_body(r))?;
                Ok(ev.tokenizer.encode(&context, specials)?.ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let new = generate(
            ev.model,
            ev.tokenizer,
            &prompts,
            &opts,
            ev.device,
            |_, _| {},
        )?;
        for (r, ids) in chunk.iter().zip(&new) {
            let generated = ev.tokenizer.decode(ids, true)?;
            let answer = cut_at_stop(&generated, &stop).to_string();
            out.push(GenerationSample {
                correct: exact_match(&answer, &r.answer),
                target: r.answer.clone(),
                answer,
                generated,
            });
        }
        progress(out.len(), scored.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_ends_at_the_earliest_stop_string() {
        let stop: Vec<String> = DEFAULT_STOP.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            cut_at_stop(" ( 8 - 7 ) = 1\n\nQuestion: x", &stop),
            "( 8 - 7 ) = 1"
        );
        assert_eq!(cut_at_stop(" 12 Question: 3\n\n", &stop), "12");
        assert_eq!(cut_at_stop("a\nb", &stop), "a\nb");
        assert_eq!(cut_at_stop("a\nb", &[]), "a\nb");
    }
}
