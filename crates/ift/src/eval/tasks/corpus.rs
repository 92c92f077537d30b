//! Tasks over training-style record files (`data::load_records`): perplexity
//! on chat, prompt-completion or text records, and preference accuracy on
//! chosen/rejected records. Records are encoded exactly as for training.

use std::collections::BTreeMap;
use std::path::Path;

use super::run::{EvalOptions, Evaluator};
use crate::data::{
    encode_preference, encode_record, load_records, DataFormat, EncodeOptions, EncodedExample,
};
use crate::eval::{evaluate_loss, score_sequences};
use crate::Result;

fn encode_options(ev: &Evaluator) -> EncodeOptions {
    // The model's window, not the training default: nothing it could see is cut.
    EncodeOptions {
        max_length: Some(ev.model.config.max_position_embeddings),
        ..EncodeOptions::default()
    }
}

/// The sequences a perplexity task scores: its records encoded as for
/// training, within the model's window (a record whose answer the window cuts
/// away is skipped).
pub fn perplexity_examples(
    ev: &Evaluator,
    path: &Path,
    o: &EvalOptions,
) -> Result<Vec<EncodedExample>> {
    let encode = encode_options(ev);
    let mut examples = Vec::new();
    for record in load_records(path, DataFormat::Auto)?
        .iter()
        .take(o.limit.unwrap_or(usize::MAX))
    {
        examples.extend(encode_record(record, ev.tokenizer, ev.template, &encode)?);
    }
    Ok(examples)
}

/// The pairs a preference task scores, as `(chosen, rejected)` sequences (a
/// pair whose answers the window cuts away is skipped).
pub fn preference_examples(
    ev: &Evaluator,
    path: &Path,
    o: &EvalOptions,
) -> Result<(Vec<EncodedExample>, Vec<EncodedExample>)> {
    let encode = encode_options(ev);
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    for record in load_records(path, DataFormat::Auto)?
        .iter()
        .take(o.limit.unwrap_or(usize::MAX))
    {
        if let Some(p) = encode_preference(record, ev.tokenizer, ev.template, &encode)? {
            chosen.push(p.chosen);
            rejected.push(p.rejected);
        }
    }
    Ok((chosen, rejected))
}

/// `loss` (token-mean NLL of the trained tokens) and `ppl`. Returns the record count.
pub fn perplexity(
    ev: &Evaluator,
    path: &Path,
    o: &EvalOptions,
    metrics: &mut BTreeMap<String, f64>,
) -> Result<usize> {
    let examples = perplexity_examples(ev, path, o)?;
    let l = evaluate_loss(ev.model, &examples, o.batch_size, ev.device)?;
    metrics.insert("loss".into(), l.eval_loss);
    metrics.insert("ppl".into(), l.eval_ppl);
    Ok(examples.len())
}

/// `acc` (chosen has the higher summed log-probability), `acc_mean` (higher
/// per-token mean, fairer to answers of different lengths) and `margin` (mean
/// of chosen − rejected summed log-probabilities, nats). Ties count as wrong.
pub fn preference(
    ev: &Evaluator,
    path: &Path,
    o: &EvalOptions,
    metrics: &mut BTreeMap<String, f64>,
    progress: &mut impl FnMut(usize, usize),
) -> Result<usize> {
    let (chosen, rejected) = preference_examples(ev, path, o)?;
    let n = chosen.len();
    let c = score_sequences(ev.model, &chosen, o.batch_size, ev.device, |d| {
        progress(d, 2 * n)
    })?;
    let r = score_sequences(ev.model, &rejected, o.batch_size, ev.device, |d| {
        progress(n + d, 2 * n)
    })?;
    let (mut acc, mut acc_mean, mut margin) = (0.0, 0.0, 0.0);
    for (i, (c, r)) in c.iter().zip(&r).enumerate() {
        // Identical answers are a tie by definition: scored in differently
        // padded batches, their sums can differ in the last bit either way.
        if chosen[i] == rejected[i] {
            continue;
        }
        let mean = |s: &crate::eval::Score| s.logprob_sum / s.tokens.max(1) as f64;
        acc += f64::from(c.logprob_sum > r.logprob_sum);
        acc_mean += f64::from(mean(c) > mean(r));
        margin += c.logprob_sum - r.logprob_sum;
    }
    let d = n.max(1) as f64;
    metrics.insert("acc".into(), acc / d);
    metrics.insert("acc_mean".into(), acc_mean / d);
    metrics.insert("margin".into(), margin / d);
    Ok(n)
}
