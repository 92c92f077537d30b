//! The explicit engine's forward pass: the decoder (`decode.rs`) and the
//! chunked vocabulary head, returning each target token's log-probability
//! and, when asked, a [`Tape`] holding exactly what [`Tape::backward`] needs
//! (no autograd graph is recorded).

use candle_core::{Result, Tensor};

use super::decode::{decode, Decoded, LayerTape};
use super::kernels::matmul::matmul;
use super::kernels::softmax::AttnMask;
use super::kernels::vocab::head_logprobs;
use super::rows::{Selected, Wanted};
use super::shared_prefix::SharedPrefix;
use crate::data::next_positions;
use crate::model::{LlamaForCausalLM, ModelInput};

/// What the backward pass needs from one forward.
pub struct Tape {
    pub(super) from_ids: Option<Tensor>,
    /// The same ids on the host, read off a GPU before the forward queued
    /// any work (for the embedding backward's grouping; `None` on the CPU).
    pub(super) host_ids: Option<Vec<u32>>,
    pub(super) shape: (usize, usize),
    pub(super) layers: Vec<LayerTape>,
    pub(super) x_final: Tensor,
    pub(super) rstd_f: Tensor,
    pub(super) head: HeadTape,
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) mask: AttnMask,
}

impl Tape {
    /// The tape of a decoded `(b, t)` pass whose head kept `head`.
    fn new(dec: Decoded, shape: (usize, usize), head: HeadTape) -> Tape {
        Tape {
            from_ids: dec.from_ids,
            host_ids: dec.host_ids,
            shape,
            layers: dec.layers,
            x_final: dec.x_final,
            rstd_f: dec.hidden.rstd,
            head,
            cos: dec.cos,
            sin: dec.sin,
            mask: dec.mask,
        }
    }
}

/// What the vocabulary head's backward needs: which output the forward gave.
pub(super) enum HeadTape {
    /// Target-token log-probabilities (the chunked head; `∂L/∂logp` comes back).
    LogProbs {
        /// Final hidden states of the positions that predict a wanted token,
        /// `(b·(t−1), hidden)` or the selected rows'.
        rows: Tensor,
        /// Which rows `rows` holds, when not all of them.
        selected: Option<Selected>,
        targets: Tensor,
        lse: Tensor,
        /// The head's logit chunks, when small enough to keep.
        chunks: Option<Vec<Tensor>>,
    },
    /// The whole `(b, t, vocab)` logits (`∂L/∂logits` comes back): the final
    /// hidden states of every position, `(b·t, hidden)`.
    Logits { rows: Tensor },
}

/// Log-probabilities `(b, t − 1)` of `ids[:, 1:]` given the prefix, as
/// `token_logprobs(model.forward(..), ids)` at the `wanted` positions (0
/// elsewhere, see [`Wanted`]); with `record`, the tape too. The vocabulary
/// head runs in chunks (`kernels::vocab`), on the wanted rows only.
pub fn forward_logps(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
    record: bool,
) -> Result<(Tensor, Option<Tape>)> {
    logps_from(model, input, attention_mask, ids, wanted, record, None)
}

/// [`forward_logps`] with its tape, computing only the positions after
/// `prefix`'s (see [`SharedPrefix`]): `input` must equal the input of the
/// pass that recorded `prefix` at each sequence's first
/// [`SharedPrefix::positions`], under the same attention mask. The result and the tape are
/// those of a whole pass over `input`.
pub fn forward_logps_after(
    prefix: SharedPrefix,
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
) -> Result<(Tensor, Option<Tape>)> {
    logps_from(
        model,
        input,
        attention_mask,
        ids,
        wanted,
        true,
        Some(prefix),
    )
}

fn logps_from(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
    record: bool,
    prefix: Option<SharedPrefix>,
) -> Result<(Tensor, Option<Tape>)> {
    let (b, t) = ids.dims2()?;
    if t < 2 {
        candle_core::bail!("a sequence needs at least two tokens to predict one");
    }
    let hid = model.config.hidden_size;
    let selected = Selected::new(wanted, (b, t), ids.device())?;
    let dec = decode(model, input, attention_mask, record, prefix)?;
    let all_targets = next_positions(ids)?.flatten_all()?;
    let (head_rows, targets) = match &selected {
        None => (
            dec.hidden
                .y
                .reshape((b, t, hid))?
                .narrow(1, 0, t - 1)?
                .contiguous()?
                .reshape((b * (t - 1), hid))?,
            all_targets,
        ),
        Some(s) => s.gather(&dec.hidden.y, &all_targets)?,
    };
    let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
    let out = head_logprobs(&head_rows, &head, &targets, record)?;
    let logp = match &selected {
        None => out.logp,
        Some(s) => s.scatter_targets(&out.logp, b * (t - 1))?,
    }
    .reshape((b, t - 1))?;
    let head = HeadTape::LogProbs {
        rows: head_rows,
        selected,
        targets,
        lse: out.lse,
        chunks: out.chunks,
    };
    let tape = record.then(|| Tape::new(dec, (b, t), head));
    Ok((logp, tape))
}

/// The whole `(b, t, vocab)` logits (f32), without a graph or a tape: for
/// passes that need every next-token distribution (IFT's predictions).
/// Equals `model.forward` to float rounding, at the fused kernels' speed.
pub fn forward_logits(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
) -> Result<Tensor> {
    Ok(forward_logits_taped(model, input, attention_mask, false)?.0)
}

/// [`forward_logits`], with `record` also the tape whose backward takes
/// `∂L/∂logits` (objectives that need whole distributions: TDPO's
/// sequential KL).
pub fn forward_logits_taped(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    record: bool,
) -> Result<(Tensor, Option<Tape>)> {
    let (b, t) = attention_mask.dims2()?;
    let dec = decode(model, input, attention_mask, record, None)?;
    let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
    let logits = matmul(&dec.hidden.y, &head.t()?)?.to_dtype(candle_core::DType::F32)?;
    let logits = logits.reshape((b, t, model.lm_head().dim(0)?))?;
    let tape = record.then(|| {
        let rows = dec.hidden.y.clone();
        Tape::new(dec, (b, t), HeadTape::Logits { rows })
    });
    Ok((logits, tape))
}

/// Without a graph or a tape: each position's most likely next token
/// `(b, t)` u32 and the log-probabilities `(b, t − 1)` of `ids[:, 1:]`, from
/// one chunked pass of the head (never the `(b, t, vocab)` logits), at the
/// `wanted` positions (both 0 elsewhere). The last position predicts a token
/// but has no target, and is computed only when all positions are wanted.
pub fn forward_greedy(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
) -> Result<(Tensor, Tensor)> {
    let (best, logp, _) = greedy_from(model, input, attention_mask, ids, wanted, None)?;
    Ok((best, logp))
}

/// [`forward_greedy`], recording its pass so that a later pass whose input
/// agrees with `input` on each sequence's first `len` positions can reuse
/// them ([`forward_logps_after`]). `len` must be below the sequence length.
pub fn forward_greedy_sharing(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
    len: usize,
) -> Result<(Tensor, Tensor, SharedPrefix)> {
    let (best, logp, prefix) = greedy_from(model, input, attention_mask, ids, wanted, Some(len))?;
    match prefix {
        Some(p) => Ok((best, logp, p)),
        None => candle_core::bail!("the greedy pass kept no prefix"),
    }
}

fn greedy_from(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    ids: &Tensor,
    wanted: Wanted<'_>,
    share: Option<usize>,
) -> Result<(Tensor, Tensor, Option<SharedPrefix>)> {
    let (b, t) = ids.dims2()?;
    if t < 2 {
        candle_core::bail!("a sequence needs at least two tokens to predict one");
    }
    if share.is_some_and(|len| len == 0 || len >= t) {
        candle_core::bail!("a shared prefix needs 0 < len < {t}, got {share:?}");
    }
    let selected = Selected::new(wanted, (b, t), ids.device())?;
    let dec = decode(model, input, attention_mask, share.is_some(), None)?;
    let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
    let head_argmax = super::kernels::vocab::head_argmax_logprobs;
    let (best, logp) = match &selected {
        None => {
            // Targets for every position; the last one's (a placeholder id 0) is dropped.
            let pad = Tensor::zeros((b, 1), ids.dtype(), ids.device())?;
            let targets = Tensor::cat(&[&next_positions(ids)?, &pad], 1)?.flatten_all()?;
            let out = head_argmax(&dec.hidden.y, &head, &targets)?;
            let logp = out.logp.reshape((b, t))?.narrow(1, 0, t - 1)?;
            (out.argmax, logp.contiguous()?)
        }
        Some(s) => {
            let targets = next_positions(ids)?.flatten_all()?;
            let (rows, targets) = s.gather(&dec.hidden.y, &targets)?;
            let out = head_argmax(&rows, &head, &targets)?;
            let spread = |v: &Tensor| -> Result<Tensor> {
                let full = s.scatter_targets(v, b * (t - 1))?.reshape((b, t - 1))?;
                Tensor::cat(&[&full, &Tensor::zeros((b, 1), v.dtype(), v.device())?], 1)
            };
            let best = out.argmax.as_ref().map(spread).transpose()?;
            let logp = s
                .scatter_targets(&out.logp, b * (t - 1))?
                .reshape((b, t - 1))?;
            (best, logp)
        }
    };
    let best = match best {
        Some(a) => a.reshape((b, t))?,
        None => candle_core::bail!("the head returned no argmax"),
    };
    let prefix = share.map(|len| SharedPrefix { len, dec });
    Ok((best, logp, prefix))
}
