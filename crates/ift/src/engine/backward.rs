//! The explicit engine's backward pass: from `∂L/∂logp` (the gradient an
//! objective's small autograd graph gives for each target token's
//! log-probability) back through the head, every layer and the embedding,
//! by the chain rule written out (llm.c's approach): no graph, no
//! zero-filled gradient per node.

use std::collections::HashSet;

use candle_core::{DType, Result, Tensor, D};

use super::decode::{AttnTape, LayerTape, Proj};
use super::forward::{HeadTape, Tape};
use super::kernels::attention_backward::attention_backward;
use super::kernels::embed_grad::embedding_backward;
use super::kernels::matmul::matmul;
use super::kernels::norm::rms_norm_backward;
use super::kernels::rope::{rope_from_heads_backward, Heads};
use super::kernels::softmax::causal_softmax_backward;
use super::kernels::swiglu::{swiglu, swiglu_backward};
use super::kernels::vocab::head_backward;
use super::projection::project_backward;
use crate::model::layers::Linear;
use crate::model::LlamaForCausalLM;

/// Parameter gradients by Hugging Face name (trainable parameters only), and
/// the gradient of the input embeddings when the forward read embeddings.
pub struct EngineGrads {
    pub params: Vec<(String, Tensor)>,
    /// `(b, t, hidden)`; `None` when the input was token ids.
    pub input_embeds: Option<Tensor>,
}

struct Sink<'a> {
    trains: &'a HashSet<String>,
    out: Vec<(String, Tensor)>,
}

impl Sink<'_> {
    fn wants(&self, name: &str) -> bool {
        self.trains.contains(name)
    }

    fn put(&mut self, name: String, g: Tensor) {
        self.out.push((name, g));
    }

    /// `dx` of projection `which` of layer `layer` (`model.layers.3`) — `y =
    /// x Wᵀ + b` plus its adapter's delta — given `dy`, recording the
    /// gradients of its trainable tensors; with `into` (another projection's
    /// `dx` of the same input), the sum, accumulated in place where it can.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &mut self,
        (layer, tp): (&str, &LayerTape),
        which: Proj,
        l: &Linear,
        x: &Tensor,
        dy: &Tensor,
        into: Option<Tensor>,
    ) -> Result<Tensor> {
        let trains = self.trains;
        let out = &mut self.out;
        project_backward(
            &format!("{layer}.{}", which.path()),
            l,
            x,
            tp.lora[which as usize].as_ref(),
            dy,
            into,
            &|n| trains.contains(n),
            &mut |n, g| out.push((n, g)),
        )
    }

    fn norm(&mut self, name: String, dw: Tensor) {
        if self.wants(&name) {
            self.put(name, dw);
        }
    }
}

impl Tape {
    /// Every trainable parameter's gradient given the gradient of the
    /// forward's output: `∂L/∂logp` `(b, t − 1)` for [`forward_logps`]'s
    /// tape, `∂L/∂logits` `(b, t, vocab)` for [`forward_logits_taped`]'s.
    ///
    /// [`forward_logps`]: super::forward_logps
    /// [`forward_logits_taped`]: super::forward_logits_taped
    pub fn backward(&self, model: &LlamaForCausalLM, dout: &Tensor) -> Result<EngineGrads> {
        let trains: HashSet<String> = model
            .parameters()
            .vars()
            .iter()
            .map(|(n, _)| n.clone())
            .collect();
        let mut sink = Sink {
            trains: &trains,
            out: Vec::new(),
        };
        let cfg = &model.config;
        let (b, t) = self.shape;
        let hid = cfg.hidden_size;
        let head = model.lm_head().detach().to_dtype(model.compute_dtype)?;
        // Whether the head's own gradient is wanted (tied: the embedding's).
        let head_trains = match model.lm_head.is_none() {
            true => sink.wants("model.embed_tokens.weight"),
            false => sink.wants("lm_head.weight"),
        };
        let (dh, d_head) = self.head_backward(&head, dout, head_trains)?;
        let (mut dx, dw) = rms_norm_backward(
            &self.x_final,
            &model.norm.weight.detach(),
            &self.rstd_f,
            &dh,
            None,
        )?;
        sink.norm("model.norm.weight".into(), dw);
        for (i, (layer, tape)) in model.layers.iter().zip(&self.layers).enumerate().rev() {
            dx = self.layer_backward(model, i, layer, tape, dx, &mut sink)?;
        }
        let tied = model.lm_head.is_none();
        let embed_name = "model.embed_tokens.weight";
        let mut d_head = d_head.map(|d| d.to_dtype(DType::F32)).transpose()?;
        let dx = dx.to_dtype(DType::F32)?;
        if !tied && sink.wants("lm_head.weight") {
            sink.put(
                "lm_head.weight".into(),
                d_head.take().unwrap_or(head.zeros_like()?),
            );
        }
        let input_embeds = match &self.from_ids {
            Some(ids) => {
                if sink.wants(embed_name) {
                    let vocab = model.embed_tokens.dim(0)?;
                    let rows = embedding_backward(ids, self.host_ids.as_deref(), &dx, vocab)?;
                    let total = match (tied, d_head.take()) {
                        (true, Some(dh)) => (rows + dh)?,
                        _ => rows,
                    };
                    sink.put(embed_name.into(), total);
                }
                None
            }
            None => {
                if let (true, Some(dh)) = (tied, d_head.take()) {
                    if sink.wants(embed_name) {
                        sink.put(embed_name.into(), dh);
                    }
                }
                Some(dx.reshape((b, t, hid))?)
            }
        };
        Ok(EngineGrads {
            params: sink.out,
            input_embeds,
        })
    }

    /// `∂L/∂(final hidden states)` `(b·t, hidden)` from the head's output
    /// gradient, and the head weight's gradient when `head_trains`.
    fn head_backward(
        &self,
        head: &Tensor,
        dout: &Tensor,
        head_trains: bool,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, t) = self.shape;
        let rows = match &self.head {
            HeadTape::Logits { rows } => rows,
            HeadTape::LogProbs {
                rows,
                selected,
                targets,
                lse,
                chunks,
            } => {
                let mut g = dout.contiguous()?.flatten_all()?;
                if let Some(s) = selected {
                    g = g.index_select(&s.targets, 0)?;
                }
                let (dh_rows, d_head) =
                    head_backward(rows, head, targets, lse, &g, chunks.as_deref())?;
                let hid = dh_rows.dim(1)?;
                // The rows the head did not run (the last position, unwanted ones) get no gradient.
                let dh = match selected {
                    None => Tensor::cat(
                        &[
                            &dh_rows.reshape((b, t - 1, hid))?,
                            &Tensor::zeros((b, 1, hid), dh_rows.dtype(), dh_rows.device())?,
                        ],
                        1,
                    )?
                    .reshape((b * t, hid))?,
                    Some(s) => Tensor::zeros((b * t, hid), dh_rows.dtype(), dh_rows.device())?
                        .index_add(&s.positions, &dh_rows, 0)?,
                };
                return Ok((dh, Some(d_head)));
            }
        };
        // logits = rows · headᵀ: ∂rows = g · head, ∂head = gᵀ · rows.
        let vocab = head.dim(0)?;
        let g = dout.reshape((b * t, vocab))?.to_dtype(rows.dtype())?;
        let dh = matmul(&g, head)?;
        let d_head = match head_trains {
            true => Some(matmul(&g.t()?.contiguous()?, rows)?),
            false => None,
        };
        Ok((dh, d_head))
    }

    fn layer_backward(
        &self,
        model: &LlamaForCausalLM,
        i: usize,
        layer: &crate::model::DecoderLayer,
        tp: &LayerTape,
        dx: Tensor,
        sink: &mut Sink<'_>,
    ) -> Result<Tensor> {
        let cfg = &model.config;
        let (b, t) = self.shape;
        let (h, kvh, d) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let p = format!("model.layers.{i}");
        let at = (p.as_str(), tp);
        // MLP: x_out = x_mid + down(silu(gate) ∘ up).
        let mlp = &layer.mlp;
        let act = swiglu(&tp.gate, &tp.up)?;
        let d_act = sink.linear(at, Proj::Down, &mlp.down_proj, &act, &dx, None)?;
        drop(act);
        let (d_gate, d_up) = swiglu_backward(&tp.gate, &tp.up, &d_act)?;
        // One input feeds both: their input gradients sum (in place).
        let dh2 = sink.linear(at, Proj::Gate, &mlp.gate_proj, &tp.h2, &d_gate, None)?;
        let dh2 = sink.linear(at, Proj::Up, &mlp.up_proj, &tp.h2, &d_up, Some(dh2))?;
        let post = &layer.post_attention_layernorm;
        let w2 = post.weight.detach();
        let (dx, dw) = rms_norm_backward(&tp.x_mid, &w2, &tp.rstd2, &dh2, Some(&dx))?;
        sink.norm(format!("{p}.post_attention_layernorm.weight"), dw);
        // Attention: x_mid = x_in + o_proj(softmax(q kᵀ·scale + mask) v).
        let a = &layer.self_attn;
        let d_o = sink.linear(at, Proj::O, &a.o_proj, &tp.o, &dx, None)?;
        let heads = |x: &Tensor| -> Result<Tensor> {
            x.reshape((b, t, h, d))?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b, kvh, (h / kvh) * t, d))
        };
        let scale = 1.0 / (d as f64).sqrt();
        let (dq, dk, dv) = match &tp.attn {
            AttnTape::Lse(lse) => {
                // Δ = rowsum(dO ∘ O) per query, in the kernel's row order.
                let delta = (&d_o * &tp.o)?
                    .reshape((b, t, h, d))?
                    .sum(D::Minus1)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((b, kvh, (h / kvh) * t))?;
                let (q, k, v) = (&tp.q, &tp.k, &tp.v);
                attention_backward(q, k, v, &heads(&d_o)?, &delta, lse, &self.mask, scale)?
            }
            AttnTape::Probs(p) => {
                let d_o = heads(&d_o)?;
                let dp = matmul(&d_o, &tp.v.t()?)?;
                let dv = matmul(&p.t()?, &d_o)?; // sums over the query heads sharing it
                let ds = causal_softmax_backward(p, &dp, scale)?;
                drop(dp);
                (matmul(&ds, &tp.k)?, matmul(&ds.t()?, &tp.q)?, dv)
            }
        };
        let dq = dq.reshape((b, h, t, d))?;
        let dq = rope_from_heads_backward(&dq, Heads { b, t, n: h, d }, &self.cos, &self.sin)?;
        let dk = rope_from_heads_backward(&dk, Heads { b, t, n: kvh, d }, &self.cos, &self.sin)?;
        let dv = dv
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * t, kvh * d))?;
        let dh1 = sink.linear(at, Proj::Q, &a.q_proj, &tp.h1, &dq, None)?;
        let dh1 = sink.linear(at, Proj::K, &a.k_proj, &tp.h1, &dk, Some(dh1))?;
        let dh1 = sink.linear(at, Proj::V, &a.v_proj, &tp.h1, &dv, Some(dh1))?;
        let inp = &layer.input_layernorm;
        let w1 = inp.weight.detach();
        let (dx, dw) = rms_norm_backward(&tp.x_in, &w1, &tp.rstd1, &dh1, Some(&dx))?;
        sink.norm(format!("{p}.input_layernorm.weight"), dw);
        Ok(dx)
    }
}
