//! The policy as the objectives see it: target-token log-probabilities (or,
//! for TDPO, whole logits) with a gradient path to the parameters, on the
//! explicit engine (`crate::engine`, the training path) or the graph-built
//! model (the reference path the tests compare it with).
//!
//! On the explicit engine each forward returns a leaf tensor and keeps its
//! tape; [`Policy::backward`] runs candle's autograd over the objective's
//! small graph down to those leaves, then each tape's hand-written backward
//! from the leaf's gradient.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::engine::{
    forward_greedy, forward_greedy_sharing, forward_logits, forward_logits_taped, forward_logps,
    forward_logps_after, SharedPrefix, Tape, Wanted,
};
use crate::loss::token_logprobs;
use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// How the decoder's forward and backward passes are computed: training
/// always uses the explicit engine; `Graph` is the tests' oracle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Hand-written backward, fused kernels, chunked vocabulary head.
    #[default]
    Explicit,
    /// candle's autograd over the graph-built model (the reference path).
    Graph,
}

struct Pending {
    leaf: Var,
    tape: Tape,
    /// The input embeddings when they carry a graph (IFT's `live` embedding).
    embeds: Option<Tensor>,
}

/// A shared prefix is used when it covers at least `1 / MIN_SHARE_PARTS` of
/// the sequence. It skips that share of the projections but costs a copy of
/// each layer's later rows and attention over the prefix again, so a short
/// one gains little; the threshold is a judgement, not a measured break-even
/// (`--prompt 128` of 256 gained, `scripts/bench/README.md`).
const MIN_SHARE_PARTS: usize = 8;

/// The model being trained (or evaluated), for one optimiser step's passes.
pub struct Policy<'m> {
    pub model: &'m LlamaForCausalLM,
    engine: Engine,
    /// Whether a backward pass follows (tapes are kept only then).
    train: bool,
    pending: RefCell<Vec<Pending>>,
}

impl<'m> Policy<'m> {
    pub fn new(model: &'m LlamaForCausalLM, engine: Engine, train: bool) -> Self {
        Self {
            model,
            engine,
            train,
            pending: RefCell::new(Vec::new()),
        }
    }

    /// `logp[b, i] = log p(ids[b, i + 1] | prefix)`, `(b, t − 1)`, with a
    /// gradient path to the parameters (and to `input`'s embeddings if they
    /// have a graph) when training. Only the `wanted` positions are exact
    /// (the explicit engine skips the others' head rows and returns 0 there):
    /// callers mask the rest out.
    pub fn token_logprobs(
        &self,
        input: ModelInput<'_>,
        attention_mask: &Tensor,
        ids: &Tensor,
        wanted: Wanted<'_>,
    ) -> Result<Tensor> {
        self.token_logprobs_after(None, input, attention_mask, ids, wanted)
    }

    /// [`Self::token_logprobs`], computing only the positions after `prefix`
    /// when there is one (from [`Self::greedy_no_grad_sharing`] over an input
    /// that agrees with `input` on those positions).
    pub fn token_logprobs_after(
        &self,
        prefix: Option<SharedPrefix>,
        input: ModelInput<'_>,
        attention_mask: &Tensor,
        ids: &Tensor,
        wanted: Wanted<'_>,
    ) -> Result<Tensor> {
        if self.engine == Engine::Graph {
            let logits = self.model.forward(input, attention_mask)?;
            return Ok(token_logprobs(&logits, ids)?);
        }
        let (logp, tape) = match prefix {
            Some(p) => forward_logps_after(p, self.model, input, attention_mask, ids, wanted)?,
            None => forward_logps(self.model, input, attention_mask, ids, wanted, self.train)?,
        };
        self.keep(logp, tape, input)
    }

    /// `out` as a leaf whose gradient [`Self::backward`] carries through
    /// `tape`; `out` itself without a tape.
    fn keep(&self, out: Tensor, tape: Option<Tape>, input: ModelInput<'_>) -> Result<Tensor> {
        let Some(tape) = tape else {
            return Ok(out);
        };
        let leaf = Var::from_tensor(&out)?;
        let embeds = match input {
            ModelInput::Embeds(e) if e.track_op() => Some(e.clone()),
            _ => None,
        };
        let out = leaf.as_tensor().clone();
        self.pending
            .borrow_mut()
            .push(Pending { leaf, tape, embeds });
        Ok(out)
    }

    /// `(b, t, vocab)` logits with a gradient path to the parameters when
    /// training (for objectives that need whole distributions).
    pub fn logits(&self, input: ModelInput<'_>, attention_mask: &Tensor) -> Result<Tensor> {
        if self.engine == Engine::Graph {
            return Ok(self.model.forward(input, attention_mask)?);
        }
        let (logits, tape) = forward_logits_taped(self.model, input, attention_mask, self.train)?;
        self.keep(logits, tape, input)
    }

    /// `(b, t, vocab)` logits without any graph (IFT's prediction pass), on
    /// this policy's engine.
    pub fn logits_no_grad(&self, input: ModelInput<'_>, attention_mask: &Tensor) -> Result<Tensor> {
        Ok(match self.engine {
            Engine::Explicit => forward_logits(self.model, input, attention_mask)?,
            Engine::Graph => self.model.detached().forward(input, attention_mask)?,
        })
    }

    /// Without any graph: each position's most likely next token `(b, t)` u32
    /// and `token_logprobs` of `ids` `(b, t − 1)`, exact at the `wanted`
    /// positions. On the explicit engine one chunked pass of the head gives
    /// both (IFT's greedy predictions).
    pub fn greedy_no_grad(
        &self,
        input: ModelInput<'_>,
        attention_mask: &Tensor,
        ids: &Tensor,
        wanted: Wanted<'_>,
    ) -> Result<(Tensor, Tensor)> {
        Ok(match self.engine {
            Engine::Explicit => forward_greedy(self.model, input, attention_mask, ids, wanted)?,
            Engine::Graph => {
                let logits = self.model.detached().forward(input, attention_mask)?;
                let best = logits.argmax(candle_core::D::Minus1)?;
                (best, token_logprobs(&logits, ids)?)
            }
        })
    }

    /// [`Self::greedy_no_grad`] before a training pass whose input agrees
    /// with `input` on each sequence's first `share` positions (IFT: those
    /// before the first response token). Where it pays — the explicit engine
    /// training a model without an adapter, and `share` at least an eighth of
    /// the sequence — this pass is recorded and returned as a prefix, so that
    /// [`Self::token_logprobs_after`] computes only the later positions.
    pub fn greedy_no_grad_sharing(
        &self,
        input: ModelInput<'_>,
        attention_mask: &Tensor,
        ids: &Tensor,
        wanted: Wanted<'_>,
        share: usize,
    ) -> Result<(Tensor, Tensor, Option<SharedPrefix>)> {
        let t = ids.dim(1)?;
        let pays = self.engine == Engine::Explicit
            && self.train
            && share < t
            && share * MIN_SHARE_PARTS >= t
            && SharedPrefix::applies_to(self.model);
        if !pays {
            let (best, logp) = self.greedy_no_grad(input, attention_mask, ids, wanted)?;
            return Ok((best, logp, None));
        }
        let (best, logp, prefix) =
            forward_greedy_sharing(self.model, input, attention_mask, ids, wanted, share)?;
        Ok((best, logp, Some(prefix)))
    }

    /// Gradients of `loss` for the trainable parameters: autograd down to the
    /// log-probabilities, then each forward's explicit backward.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        let mut store = loss.backward()?;
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(store);
        }
        let vars: HashMap<&str, &Var> = self
            .model
            .parameters()
            .vars()
            .iter()
            .map(|(n, v)| (n.as_str(), v))
            .collect();
        for p in pending {
            let Some(g) = store.get(p.leaf.as_tensor()).cloned() else {
                continue; // this forward did not reach the loss
            };
            let grads = p.tape.backward(self.model, &g)?;
            for (name, grad) in grads.params {
                if let Some(var) = vars.get(name.as_str()) {
                    add_grad(&mut store, var.as_tensor(), grad)?;
                }
            }
            if let (Some(e), Some(de)) = (p.embeds, grads.input_embeds) {
                // ∂L/∂θ through the embeddings = autograd of ⟨e, ∂L/∂e⟩.
                let through = (&e * &de)?.sum_all()?.backward()?;
                // The embeddings' own gradient too, as autograd's store holds it.
                add_grad(&mut store, &e, de)?;
                for var in vars.values() {
                    if let Some(g) = through.get(var.as_tensor()) {
                        add_grad(&mut store, var.as_tensor(), g.clone())?;
                    }
                }
            }
        }
        Ok(store)
    }
}

fn add_grad(store: &mut GradStore, var: &Tensor, g: Tensor) -> Result<()> {
    let sum = match store.get(var) {
        Some(acc) => (acc + g)?,
        None => g,
    };
    store.insert(var, sum);
    Ok(())
}
