//! The methods, one folder each (`sft`, `ift`, `dpo`, `orpo`, `simpo`,
//! `tdpo`, `kto`): its options, its pure loss with the equation in the doc
//! (`loss.rs`) and its micro-batch — the function that turns a micro-batch of
//! its examples into a loss already normalised for the whole optimiser step
//! (so the micro-batch losses of a step add up to the step's loss, whatever
//! the split). [`Objective`] is the choice of one, and [`micro_batch_loss`]
//! dispatches to it. What they share: [`Policy`] (the model as the methods see
//! it), the pairwise forward (`pairs.rs`) and the diagnostics.

mod diagnostics;
pub mod dpo;
pub mod ift;
pub mod kto;
pub mod orpo;
mod pairs;
pub mod policy;
pub mod sft;
pub mod simpo;
pub mod tdpo;

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use diagnostics::Diagnostics;
pub use dpo::DpoParams;
pub use ift::IftParams;
pub use kto::KtoParams;
pub use orpo::OrpoParams;
pub use policy::{Engine, Policy};
pub use sft::SftParams;
pub use simpo::SimpoParams;
pub use tdpo::TdpoParams;

use crate::data::EncodedExample;
use crate::data::StepBatch;
use crate::loss::StepTotals;
use crate::model::LlamaForCausalLM;
use crate::reference::ReferenceLogps;
use crate::Result;

/// Where a preference objective's reference log-probabilities come from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceOptions {
    /// Reference model directory. Default: the initial policy (`model.path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<PathBuf>,
    /// Use no reference model: its log-probabilities are taken as 0 (TRL's
    /// `reference_free`, i.e. a reference that is uniform over answers). Default false.
    pub reference_free: bool,
}

/// The training objective, chosen once.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// Supervised fine-tuning: teacher-forced NLL of the answer tokens.
    Sft(SftParams),
    /// Intuitive Fine-Tuning (`docs/ift.md`).
    Ift(IftParams),
    /// DPO, cDPO, hinge and IPO on preference pairs, against a reference model.
    Dpo(DpoParams, ReferenceOptions),
    /// ORPO on preference pairs; no reference model.
    Orpo(OrpoParams),
    /// SimPO on preference pairs; no reference model.
    Simpo(SimpoParams),
    /// Token-level DPO; keeps the reference model in memory.
    Tdpo(TdpoParams, ReferenceOptions),
    /// KTO on unpaired desirable / undesirable answers, against a reference model.
    Kto(KtoParams, ReferenceOptions),
}

impl Default for Objective {
    fn default() -> Self {
        Objective::Sft(SftParams::default())
    }
}

/// Where in the run a step is: λ and sampled predictions depend on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepContext {
    /// Zero-based optimiser step.
    pub step: u64,
    pub seed: u64,
}

/// The reference a preference objective compares against.
#[derive(Clone, Copy, Default)]
pub struct Reference<'a> {
    /// Per-sequence reference log-probabilities (DPO, KTO), computed once.
    pub logps: Option<&'a ReferenceLogps>,
    /// The reference model itself (TDPO needs its full distributions).
    pub model: Option<&'a LlamaForCausalLM>,
}

/// Everything a micro-batch loss needs besides the model and its examples.
#[derive(Clone, Copy)]
pub struct StepEnv<'a> {
    pub objective: &'a Objective,
    pub reference: Reference<'a>,
    pub ctx: StepContext,
    pub device: &'a Device,
    /// How the policy's passes are computed: the explicit engine in training,
    /// the graph-built model where a test wants its oracle.
    pub engine: Engine,
}

/// Figures of the whole optimiser step that every micro-batch's loss uses.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Sequences and trained tokens of the step (SFT / IFT normalisation).
    pub totals: StepTotals,
    /// Examples of the step: sequences, pairs or KTO records (`B`).
    pub examples: usize,
    /// KTO's reference point `z`, from the step's mismatched pairs.
    pub kto_z: f64,
}

/// The loss of one micro-batch `mb` of a step described by `info`.
pub fn micro_batch_loss(
    model: &Policy<'_>,
    mb: StepBatch<'_>,
    info: &StepInfo,
    env: &StepEnv<'_>,
    diag: &mut Diagnostics,
) -> Result<Tensor> {
    match (env.objective, mb) {
        (Objective::Sft(p), StepBatch::Sequences(s)) => sft::micro_batch(model, s, p, info, env),
        (Objective::Ift(p), StepBatch::Sequences(s)) => {
            ift::micro_batch(model, s, p, info, env, diag)
        }
        (Objective::Dpo(p, r), StepBatch::Pairs(s)) => {
            dpo::micro_batch(model, s, p, r, info, env, diag)
        }
        (Objective::Orpo(p), StepBatch::Pairs(s)) => {
            orpo::micro_batch(model, s, p, info, env, diag)
        }
        (Objective::Simpo(p), StepBatch::Pairs(s)) => {
            simpo::micro_batch(model, s, p, info, env, diag)
        }
        (Objective::Tdpo(p, _), StepBatch::Pairs(s)) => {
            tdpo::micro_batch(model, s, p, info, env, diag)
        }
        (Objective::Kto(p, r), StepBatch::Unpaired(s)) => {
            kto::micro_batch(model, s, p, r, info, env, diag)
        }
        (o, _) => Err(crate::Error::Train(format!(
            "objective `{}` cannot train on these examples (it needs {:?} records)",
            o.kind().name(),
            o.example_kind()
        ))),
    }
}

/// The step-level figures, including KTO's `z` (one graph-free pass over the
/// step's mismatched pairs).
pub fn step_info(
    model: &LlamaForCausalLM,
    batch: StepBatch<'_>,
    micro: usize,
    env: &StepEnv<'_>,
) -> Result<StepInfo> {
    let totals = StepTotals {
        sequences: batch.len(),
        tokens: batch.trained_tokens(),
    };
    let kto_z = match (env.objective, batch) {
        (Objective::Kto(_, r), StepBatch::Unpaired(s)) => {
            kto::reference_point(model, s, r, micro, env)?
        }
        _ => 0.0,
    };
    Ok(StepInfo {
        totals,
        examples: batch.len(),
        kto_z,
    })
}

/// The reference log-probabilities of `seqs`: from the precomputed cache, from
/// the reference model (LoRA's base with the adapter off, scored here without
/// a graph), or 0 for a reference-free objective.
pub(crate) fn reference_logps(
    seqs: &[&EncodedExample],
    r: &ReferenceOptions,
    env: &StepEnv<'_>,
) -> Result<Vec<f32>> {
    match (r.reference_free, env.reference.logps) {
        (true, _) => Ok(vec![0.0; seqs.len()]),
        (false, Some(cache)) => seqs.iter().map(|s| cache.get(s)).collect(),
        (false, None) if env.reference.model.is_some() => {
            let owned: Vec<EncodedExample> = seqs.iter().map(|&s| s.clone()).collect();
            let m = env.reference.model.expect("checked");
            let scores = crate::eval::score_sequences(m, &owned, owned.len(), env.device, |_| {})?;
            Ok(scores.iter().map(|s| s.logprob_sum as f32).collect())
        }
        (false, None) => Err(crate::Error::Train(format!(
            "objective `{}` needs reference log-probabilities, and none were computed",
            env.objective.kind().name()
        ))),
    }
}

/// `(b,)` f32 summed log-probabilities of each row's trained tokens, and the
/// trained-token counts, from `token_logps` and `mask` (both `(b, t − 1)`).
pub(crate) fn row_sums(token_logps: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((token_logps.mul(mask)?.sum(1)?, mask.sum(1)?))
}
