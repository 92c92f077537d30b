//! Log-likelihood of a continuation after a context.
//!
//! Context and continuation are tokenized once, joined (`tokenizer(context +
//! continuation)`, special tokens as the tokenizer adds them), and the
//! continuation's tokens are found by offsets: every token that ends after the
//! context's last byte is scored. A BPE merge across the join therefore counts
//! as continuation, never half of it, and the scored tokens are exactly the ones
//! the model sees. lm-eval instead encodes the context alone and scores
//! `whole[len(context_ids):]`; with the usual leading-space continuation both
//! rules pick the same tokens (the golden fixture checks this on real records).

use candle_core::Device;

use crate::data::EncodedExample;
use crate::eval::score::{score_sequences, Score};
use crate::model::LlamaForCausalLM;
use crate::tokenizer::HfTokenizer;
use crate::Result;

/// One scoring request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub context: String,
    pub continuation: String,
}

/// Encodes `context + continuation`, marking the continuation's tokens.
/// Longer than `max_len` tokens: the context is cut from the left (as lm-eval
/// does), never the continuation.
pub fn encode_request(
    tok: &HfTokenizer,
    req: &Request,
    add_special_tokens: bool,
    max_len: usize,
) -> Result<EncodedExample> {
    let text = format!("{}{}", req.context, req.continuation);
    let enc = tok.encode(&text, add_special_tokens)?;
    let cut = req.context.len();
    let mut loss_mask: Vec<bool> = enc.offsets.iter().map(|&(_, end)| end > cut).collect();
    // Special tokens (offsets (0, 0)) appended after the text are never scored.
    let last_text = enc.offsets.iter().rposition(|&(s, e)| e > s);
    for (i, m) in loss_mask.iter_mut().enumerate() {
        if last_text.is_some_and(|l| i > l) {
            *m = false;
        }
    }
    // The first token has nothing to be predicted from.
    if let Some(m) = loss_mask.first_mut() {
        *m = false;
    }
    let mut input_ids = enc.ids;
    if input_ids.len() > max_len && max_len > 0 {
        let drop = input_ids.len() - max_len;
        input_ids.drain(..drop);
        loss_mask.drain(..drop);
        loss_mask[0] = false;
    }
    Ok(EncodedExample {
        input_ids,
        loss_mask,
    })
}

/// Summed log-probabilities of each request's continuation, in order.
pub fn loglikelihoods(
    model: &LlamaForCausalLM,
    tok: &HfTokenizer,
    requests: &[Request],
    add_special_tokens: bool,
    batch_size: usize,
    device: &Device,
    progress: impl FnMut(usize),
) -> Result<Vec<Score>> {
    let max_len = model.config.max_position_embeddings;
    let examples = requests
        .iter()
        .map(|r| encode_request(tok, r, add_special_tokens, max_len))
        .collect::<Result<Vec<_>>>()?;
    score_sequences(model, &examples, batch_size, device, progress)
}
