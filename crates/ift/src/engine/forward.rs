//! The explicit engine's forward pass: the decoder written out layer by
//! layer with the fused kernels, returning each target token's
//! log-probability and, when asked, a [`Tape`] holding exactly what
//! [`Tape::backward`] needs (no autograd graph is recorded).

use candle_core::{Result, Tensor};

use super::kernels::attention::attention_forward;
use super::kernels::matmul::matmul;
use super::kernels::norm::{rms_norm, Normed};
use super::kernels::rope::{rope_to_heads, Heads};
use super::kernels::softmax::{causal_softmax, AttnMask};
use super::kernels::swiglu::swiglu;
use super::kernels::vocab::head_logprobs;
use super::projection::project;
use super::rows::{Selected, Wanted};
use crate::model::{rope, LlamaForCausalLM, ModelInput};

/// The activations one decoder layer's backward reads.
pub(super) struct LayerTape {
    pub x_in: Tensor,
    pub rstd1: Tensor,
    pub h1: Tensor,
    /// Rotated queries `(b, kvh, n_rep·t, d)`, keys and values `(b, kvh, t, d)`.
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    /// What attention's backward recomputes its probabilities from.
    pub attn: AttnTape,
    /// Attention output before `o_proj`, `(b·t, h·d)`.
    pub o: Tensor,
    pub x_mid: Tensor,
    pub rstd2: Tensor,
    pub h2: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    /// Each adapted projection's LoRA hidden `dropout(x) Aᵀ`, indexed by
    /// [`Proj`] (all `None` without an adapter).
    pub lora: [Option<Tensor>; 7],
}

/// The fused CPU attention keeps each query's log-sum-exp `(b, kvh, n_rep·t)`
/// and its backward recomputes the probabilities block by block; the matmul
/// path (other devices, bf16) keeps the probabilities `(b, kvh, n_rep·t, t)`.
pub(super) enum AttnTape {
    Lse(Tensor),
    Probs(Tensor),
}

/// The decoder layer's projections, indexing [`LayerTape::lora`].
#[derive(Clone, Copy)]
pub(super) enum Proj {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Proj {
    /// The Hugging Face module path within a layer (`self_attn.q_proj`).
    pub(super) fn path(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
        }
    }
}

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
    /// Final hidden states of the positions that predict a wanted token,
    /// `(b·(t−1), hidden)` or the selected rows'.
    pub(super) head_rows: Tensor,
    /// Which rows `head_rows` holds, when not all of them.
    pub(super) selected: Option<Selected>,
    pub(super) targets: Tensor,
    pub(super) lse: Tensor,
    /// The head's logit chunks, when small enough to keep.
    pub(super) head_chunks: Option<Vec<Tensor>>,
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) mask: AttnMask,
}

/// The decoder's output before the head, and what backward needs of it.
struct Decoded {
    from_ids: Option<Tensor>,
    host_ids: Option<Vec<u32>>,
    layers: Vec<LayerTape>,
    /// Residual stream after the last layer, `(b·t, hidden)`.
    x_final: Tensor,
    /// The final norm's output and `rstd`.
    hidden: Normed,
    cos: Tensor,
    sin: Tensor,
    mask: AttnMask,
}

/// Embedding and every layer, keeping each layer's tape when `record`.
fn decode(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    record: bool,
) -> Result<Decoded> {
    let cfg = &model.config;
    let (b, t) = attention_mask.dims2()?;
    let hid = cfg.hidden_size;
    let (h, kvh, d) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    // On a GPU, read before this forward queues any work: the copy waits for
    // what is already queued (the previous pass) but none of this forward, so
    // the device idles only while the host launches the first kernels.
    let host_ids = match &input {
        ModelInput::Ids(ids) if record && !ids.device().is_cpu() => {
            Some(ids.flatten_all()?.to_vec1::<u32>()?)
        }
        _ => None,
    };
    let (x, from_ids) = match input {
        ModelInput::Ids(ids) => {
            let flat = ids.flatten_all()?;
            let x = model.embed_tokens.detach().index_select(&flat, 0)?;
            (x, Some(flat))
        }
        ModelInput::Embeds(e) => (e.detach().reshape((b * t, hid))?, None),
    };
    // The residual stream, and every activation after it, in the compute dtype.
    let mut x = x.to_dtype(model.compute_dtype)?;
    let (cos, sin) = rope::cos_sin(&model.inv_freq, t, x.device())?;
    let mask = AttnMask::new(attention_mask, cfg.sliding_window)?;
    let scale = 1.0 / (d as f64).sqrt();
    let mut layers = Vec::new();
    for layer in &model.layers {
        let a = &layer.self_attn;
        let mut lora: [Option<Tensor>; 7] = Default::default();
        // `proj(x, l, p, None)` is the projection; with `Some(r)`, `r + ` it.
        let mut proj = |x: &Tensor, l: &crate::model::Linear, p: Proj, r| -> Result<Tensor> {
            let (y, h) = project(x, l, record, r)?;
            lora[p as usize] = h;
            Ok(y)
        };
        let n1 = rms_norm(
            &x,
            &layer.input_layernorm.weight.detach(),
            layer.input_layernorm.eps,
        )?;
        let q = rope_to_heads(
            &proj(&n1.y, &a.q_proj, Proj::Q, None)?,
            Heads { b, t, n: h, d },
            &cos,
            &sin,
        )?
        .reshape((b, kvh, (h / kvh) * t, d))?;
        let k = rope_to_heads(
            &proj(&n1.y, &a.k_proj, Proj::K, None)?,
            Heads { b, t, n: kvh, d },
            &cos,
            &sin,
        )?;
        let v = proj(&n1.y, &a.v_proj, Proj::V, None)?
            .reshape((b, t, kvh, d))?
            .transpose(1, 2)?
            .contiguous()?;
        // On the CPU, attention a block of queries at a time (no (b, h, t, t)
        // scores); elsewhere the two matmuls, keeping P for the backward.
        let (attn, o) = match attention_forward(&q, &k, &v, &mask, scale, record)? {
            Some(out) => (out.lse.map(AttnTape::Lse), out.o),
            None => {
                let p = causal_softmax(&matmul(&q, &k.t()?)?, &mask, t, scale)?;
                let o = matmul(&p, &v)?;
                (record.then_some(AttnTape::Probs(p)), o)
            }
        };
        let o = o
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * t, h * d))?;
        let x_mid = proj(&o, &a.o_proj, Proj::O, Some(&x))?;
        let post = &layer.post_attention_layernorm;
        let n2 = rms_norm(&x_mid, &post.weight.detach(), post.eps)?;
        let gate = proj(&n2.y, &layer.mlp.gate_proj, Proj::Gate, None)?;
        let up = proj(&n2.y, &layer.mlp.up_proj, Proj::Up, None)?;
        let act = swiglu(&gate, &up)?;
        let x_out = proj(&act, &layer.mlp.down_proj, Proj::Down, Some(&x_mid))?;
        drop(act);
        if record {
            layers.push(LayerTape {
                x_in: x,
                rstd1: n1.rstd,
                h1: n1.y,
                q,
                k,
                v,
                attn: attn
                    .ok_or_else(|| candle_core::Error::Msg("attention kept no tape".into()))?,
                o,
                x_mid,
                rstd2: n2.rstd,
                h2: n2.y,
                gate,
                up,
                lora,
            });
        }
        x = x_out;
    }
    let hidden = rms_norm(&x, &model.norm.weight.detach(), model.norm.eps)?;
    Ok(Decoded {
        from_ids,
        host_ids,
        layers,
        x_final: x,
        hidden,
        cos,
        sin,
        mask,
    })
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
    let (b, t) = ids.dims2()?;
    if t < 2 {
        candle_core::bail!("a sequence needs at least two tokens to predict one");
    }
    let hid = model.config.hidden_size;
    let selected = Selected::new(wanted, (b, t), ids.device())?;
    let dec = decode(model, input, attention_mask, record)?;
    let all_targets = ids.narrow(1, 1, t - 1)?.contiguous()?.flatten_all()?;
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
    let tape = record.then(|| Tape {
        from_ids: dec.from_ids,
        host_ids: dec.host_ids,
        shape: (b, t),
        layers: dec.layers,
        x_final: dec.x_final,
        rstd_f: dec.hidden.rstd,
        head_rows,
        selected,
        targets,
        lse: out.lse,
        head_chunks: out.chunks,
        cos: dec.cos,
        sin: dec.sin,
        mask: dec.mask,
    });
    Ok((logp, tape))
}

/// The whole `(b, t, vocab)` logits, without a graph or a tape: for passes
/// that need every next-token distribution (IFT's predictions). Equals
/// `model.forward` to float rounding, at the fused kernels' speed.
pub fn forward_logits(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
) -> Result<Tensor> {
    let (b, t) = attention_mask.dims2()?;
    let dec = decode(model, input, attention_mask, false)?;
    let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
    let logits = matmul(&dec.hidden.y, &head.t()?)?.to_dtype(candle_core::DType::F32)?;
    logits.reshape((b, t, model.lm_head().dim(0)?))
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
    let (b, t) = ids.dims2()?;
    if t < 2 {
        candle_core::bail!("a sequence needs at least two tokens to predict one");
    }
    let selected = Selected::new(wanted, (b, t), ids.device())?;
    let dec = decode(model, input, attention_mask, false)?;
    let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
    let head_argmax = super::kernels::vocab::head_argmax_logprobs;
    let (best, logp) = match &selected {
        None => {
            // Targets for every position; the last one's (a placeholder id 0) is dropped.
            let pad = Tensor::zeros((b, 1), ids.dtype(), ids.device())?;
            let targets = Tensor::cat(&[&ids.narrow(1, 1, t - 1)?, &pad], 1)?.flatten_all()?;
            let out = head_argmax(&dec.hidden.y, &head, &targets)?;
            let logp = out.logp.reshape((b, t))?.narrow(1, 0, t - 1)?;
            (out.argmax, logp.contiguous()?)
        }
        Some(s) => {
            let targets = ids.narrow(1, 1, t - 1)?.contiguous()?.flatten_all()?;
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
    Ok((best, logp))
}
