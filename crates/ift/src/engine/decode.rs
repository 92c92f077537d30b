//! The decoder's layers in the explicit engine: embedding, every layer with
//! the fused kernels, the final norm, and the activations each layer's
//! backward reads ([`LayerTape`]). A pass may also continue from the
//! recorded pass of another input that agrees with it on each sequence's
//! first `s` positions ([`SharedPrefix`]): it then computes only positions
//! `s..t` of every projection and reads the first `s` from the other pass
//! (causal attention: a position's activations depend on no later input).
//! IFT's two passes agree on every position before the first response token.

use candle_core::{Result, Tensor};

use super::kernels::attention::attention_forward;
use super::kernels::matmul::matmul;
use super::kernels::norm::{rms_norm, Normed};
use super::kernels::rope::{rope_to_heads, Heads};
use super::kernels::softmax::{causal_softmax, AttnMask};
use super::kernels::swiglu::swiglu;
use super::projection::project;
use super::shared_prefix::{splice, splice_heads, suffix_rows, SharedPrefix};
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

/// The decoder's output before the head, and what backward needs of it.
pub(super) struct Decoded {
    pub from_ids: Option<Tensor>,
    pub host_ids: Option<Vec<u32>>,
    pub layers: Vec<LayerTape>,
    /// Residual stream after the last layer, `(b·t, hidden)`.
    pub x_final: Tensor,
    /// The final norm's output and `rstd`.
    pub hidden: Normed,
    pub cos: Tensor,
    pub sin: Tensor,
    pub mask: AttnMask,
}

/// Embedding and every layer, keeping each layer's tape when `record`.
/// With `prefix` (whose input agrees with `input` on each sequence's first
/// [`SharedPrefix::positions`]), only the later positions are computed; the tape
/// and the outputs are whole, as if every position had been.
pub(super) fn decode(
    model: &LlamaForCausalLM,
    input: ModelInput<'_>,
    attention_mask: &Tensor,
    record: bool,
    prefix: Option<SharedPrefix>,
) -> Result<Decoded> {
    let cfg = &model.config;
    let (b, t) = attention_mask.dims2()?;
    let hid = cfg.hidden_size;
    let (h, kvh, d) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let s = prefix.as_ref().map_or(0, |p| p.len);
    if let Some(p) = &prefix {
        let same = p.dec.layers.len() == model.layers.len()
            && p.dec.mask.attention_mask.dims() == attention_mask.dims();
        if !(record && same && 0 < s && s < t) {
            candle_core::bail!(
                "a shared prefix of {s} positions needs a recording pass over the \
                 recorded pass's batch shape and a later position (t = {t})"
            );
        }
    }
    let bts = (b, t, s);
    let tn = t - s;
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
    // The residual stream, and every activation after it, in the compute
    // dtype; with a prefix, positions s..t only.
    let x = x.to_dtype(model.compute_dtype)?;
    let mut x = match s {
        0 => x,
        _ => suffix_rows(&x, bts)?,
    };
    let (cos, sin) = rope::cos_sin(&model.inv_freq, t, x.device())?;
    let (cos_s, sin_s) = (cos.narrow(0, s, tn)?, sin.narrow(0, s, tn)?);
    let mask = AttnMask::new(attention_mask, cfg.sliding_window)?;
    let scale = 1.0 / (d as f64).sqrt();
    let (shared, shared_final) = match prefix {
        Some(p) => (p.dec.layers, Some((p.dec.x_final, p.dec.hidden))),
        None => (Vec::new(), None),
    };
    // The shared pass's tape of each layer, in order, dropped once spliced.
    let mut shared = shared.into_iter();
    let mut layers = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        let pre: Option<LayerTape> = shared.next();
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
            Heads { b, t: tn, n: h, d },
            &cos_s,
            &sin_s,
        )?;
        let k = rope_to_heads(
            &proj(&n1.y, &a.k_proj, Proj::K, None)?,
            Heads {
                b,
                t: tn,
                n: kvh,
                d,
            },
            &cos_s,
            &sin_s,
        )?;
        let v = proj(&n1.y, &a.v_proj, Proj::V, None)?
            .reshape((b, tn, kvh, d))?
            .transpose(1, 2)?
            .contiguous()?;
        // Every query runs attention (the prefix's again: a few percent of
        // the layer), against the prefix's keys and values and these.
        let (q, k, v) = match &pre {
            None => (q, k, v),
            Some(p) => (
                splice_heads(p.q.reshape((b, h, t, d))?, &q, s)?,
                splice_heads(p.k.clone(), &k, s)?,
                splice_heads(p.v.clone(), &v, s)?,
            ),
        };
        let q = q.reshape((b, kvh, (h / kvh) * t, d))?;
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
        let x_mid = match s {
            0 => proj(&o, &a.o_proj, Proj::O, Some(&x))?,
            _ => proj(&suffix_rows(&o, bts)?, &a.o_proj, Proj::O, Some(&x))?,
        };
        let post = &layer.post_attention_layernorm;
        let n2 = rms_norm(&x_mid, &post.weight.detach(), post.eps)?;
        let gate = proj(&n2.y, &layer.mlp.gate_proj, Proj::Gate, None)?;
        let up = proj(&n2.y, &layer.mlp.up_proj, Proj::Up, None)?;
        let act = swiglu(&gate, &up)?;
        let x_out = proj(&act, &layer.mlp.down_proj, Proj::Down, Some(&x_mid))?;
        drop(act);
        if record {
            let attn =
                attn.ok_or_else(|| candle_core::Error::Msg("attention kept no tape".into()))?;
            let tape = LayerTape {
                x_in: x,
                rstd1: n1.rstd,
                h1: n1.y,
                q,
                k,
                v,
                attn,
                o,
                x_mid,
                rstd2: n2.rstd,
                h2: n2.y,
                gate,
                up,
                lora,
            };
            layers.push(match pre {
                None => tape,
                Some(p) => tape.after(p, bts, i == 0)?,
            });
        }
        x = x_out;
    }
    let hidden = rms_norm(&x, &model.norm.weight.detach(), model.norm.eps)?;
    let (x_final, hidden) = match shared_final {
        None => (x, hidden),
        Some((px, ph)) => (
            splice(px, &x, bts)?,
            Normed {
                y: splice(ph.y, &hidden.y, bts)?,
                rstd: splice(ph.rstd, &hidden.rstd, bts)?,
            },
        ),
    };
    Ok(Decoded {
        from_ids,
        host_ids,
        layers,
        x_final,
        hidden,
        cos,
        sin,
        mask,
    })
}
