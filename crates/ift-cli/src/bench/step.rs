//! `ift bench`: one timed measurement of the trainer's real step (objective,
//! explicit backward, clipping, AdamW) or of a no-grad forward, on a model of
//! a named configuration with random weights (speed and memory do not depend
//! on the values). `scripts/bench/run.sh` (CPU) and `scripts/gpu/check.sh`
//! (GPU) run the same work in PyTorch (`scripts/bench/versus_torch.py`)
//! before and after it and divide.
//!
//! Batches are random tokens: `batch × seq` for forward, SFT and IFT; DPO
//! takes `batch / 2` pairs (half prompt, half answer) with cached reference
//! log-probabilities.

use std::time::Instant;

use candle_core::{DType, Device};
use rand::{rngs::StdRng, Rng, SeedableRng};

use ift::data::{EncodedExample, EncodedPreference, SequenceBatch};
use ift::engine::forward_logps;
use ift::model::{LlamaConfig, LlamaForCausalLM, ModelInput, Trainable};
use ift::objective::{Objective, ObjectiveKind};
use ift::reference::prepare_reference_logps;
use ift::train::{
    clip_grad_norm, step_passes, Engine, Optimizer, OptimizerConfig, OptimizerKind, Reference,
    StepBatch, StepContext, StepEnv, PAD_ID,
};
use ift::{Error, Result};

/// The fewest sequences a measured step runs (a DPO step needs a pair).
pub const MIN_BATCH: usize = 2;
/// The shortest sequence a measured step runs.
pub const MIN_SEQ: usize = 4;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub model: String,
    /// `forward`, `sft`, `ift` or `dpo`.
    pub step: String,
    pub batch: usize,
    pub seq: usize,
    /// SFT and IFT: each sequence's first `prompt` tokens are a prompt,
    /// masked out of the loss (0: every position is trained).
    pub prompt: usize,
    pub dtype: DType,
    pub warmup: usize,
    pub iters: usize,
}

/// Seconds per step (median and min over `iters`) and tokens per second.
#[derive(Debug, Clone, Copy)]
pub struct BenchResult {
    pub median_s: f64,
    pub min_s: f64,
    pub tokens_per_s: f64,
}

fn random_ids(rng: &mut StdRng, n: usize, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab)).collect()
}

/// Runs `spec` on `device`; each timed step ends with the device synchronised.
pub fn run_bench(spec: &BenchSpec, device: &Device) -> Result<BenchResult> {
    let cfg = ift::model::presets::preset(&spec.model)?;
    let (batch, seq) = (spec.batch.max(MIN_BATCH), spec.seq.max(MIN_SEQ));
    let vocab = cfg.vocab_size as u32;
    let trainable = match spec.step.as_str() {
        "forward" => Trainable::None,
        _ => Trainable::All,
    };
    let model =
        LlamaForCausalLM::random(cfg, 0.02, 0, &trainable, device)?.with_compute_dtype(spec.dtype);
    let mut rng = StdRng::seed_from_u64(0);
    let seqs: Vec<EncodedExample> = (0..batch)
        .map(|_| EncodedExample {
            input_ids: random_ids(&mut rng, seq, vocab),
            loss_mask: (0..seq)
                .map(|i| i >= spec.prompt.clamp(1, seq - 1))
                .collect(),
        })
        .collect();
    let mut times = Vec::new();
    let mut timed = |f: &mut dyn FnMut(u64) -> Result<()>| -> Result<()> {
        for i in 0..spec.warmup + spec.iters {
            let start = Instant::now();
            f(i as u64)?;
            device.synchronize()?;
            times.push(start.elapsed().as_secs_f64());
        }
        Ok(())
    };
    if spec.step == "forward" {
        let refs: Vec<&EncodedExample> = seqs.iter().collect();
        let t = SequenceBatch::collate(&refs, PAD_ID).to_tensors(device)?;
        let ids = &t.input_ids;
        timed(&mut |_| {
            forward_logps(
                &model,
                ModelInput::Ids(ids),
                &t.attention_mask,
                ids,
                None,
                false,
            )?;
            Ok(())
        })?;
    } else {
        let kind = match spec.step.as_str() {
            "sft" => ObjectiveKind::Sft,
            "ift" => ObjectiveKind::Ift,
            "dpo" => ObjectiveKind::Dpo,
            other => {
                return Err(Error::Usage(format!(
                    "unknown bench step `{other}`; one of forward, sft, ift, dpo"
                )))
            }
        };
        let pairs: Vec<EncodedPreference> = (0..batch / 2)
            .map(|_| {
                let prompt = random_ids(&mut rng, seq / 2, vocab);
                let mut answer = || {
                    let mut ids = prompt.clone();
                    ids.extend(random_ids(&mut rng, seq - seq / 2, vocab));
                    EncodedExample {
                        loss_mask: (0..seq).map(|i| i >= seq / 2).collect(),
                        input_ids: ids,
                    }
                };
                EncodedPreference {
                    chosen: answer(),
                    rejected: answer(),
                }
            })
            .collect();
        let sequences: Vec<EncodedExample> = pairs
            .iter()
            .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
            .collect();
        let cache = std::env::temp_dir().join(format!("ift-bench-ref-{}", std::process::id()));
        let mut load = || Ok(model.detached().with_compute_dtype(DType::F32));
        let (logps, _) = prepare_reference_logps(
            &sequences,
            &cache,
            "bench",
            &mut load,
            batch,
            device,
            &mut |_, _| {},
        )?;
        let _ = std::fs::remove_dir_all(&cache);
        let objective = Objective::default_of(kind);
        let (sr, pr): (Vec<_>, Vec<_>) = (seqs.iter().collect(), pairs.iter().collect());
        let step_batch = match kind {
            ObjectiveKind::Dpo => StepBatch::Pairs(&pr),
            _ => StepBatch::Sequences(&sr),
        };
        let opt = OptimizerConfig {
            kind: OptimizerKind::AdamW,
            ..OptimizerConfig::default()
        };
        let mut optimizer = Optimizer::new(opt, model.parameters().vars().to_vec())
            .map_err(|e| Error::Train(e.to_string()))?;
        timed(&mut |i| {
            let env = StepEnv {
                objective: &objective,
                reference: Reference {
                    logps: Some(&logps),
                    model: None,
                },
                ctx: StepContext { step: i, seed: 0 },
                device,
                engine: Engine::Explicit,
            };
            let mut passes = step_passes(&model, step_batch, batch, &env, true)?;
            clip_grad_norm(&mut passes.grads, optimizer.vars(), 1.0)
                .map_err(|e| Error::Train(e.to_string()))?;
            optimizer
                .step(&passes.grads, 1e-5)
                .map_err(|e| Error::Train(e.to_string()))
        })?;
    }
    let mut t = times[spec.warmup.min(times.len().saturating_sub(1))..].to_vec();
    t.sort_by(f64::total_cmp);
    let median = t[t.len() / 2];
    Ok(BenchResult {
        median_s: median,
        min_s: t[0],
        tokens_per_s: (batch * seq) as f64 / median,
    })
}

/// Model FLOPs per trained token of one step, PaLM's accounting:
/// `6 N + 12 L H d T` (forward and backward) with `N` the matmul weights
/// (projections and the vocabulary head, not the embedding lookup); IFT adds
/// its no-grad prediction forward (`2 N + 4 L H d T`); a forward alone is a
/// third of a step.
pub fn flops_per_token(cfg: &LlamaConfig, step: &str, seq: usize) -> f64 {
    let (h, l) = (cfg.hidden_size as f64, cfg.num_hidden_layers as f64);
    let (qd, kvd) = (
        (cfg.num_attention_heads * cfg.head_dim) as f64,
        (cfg.num_key_value_heads * cfg.head_dim) as f64,
    );
    let per_layer = h * qd * 2.0 + h * kvd * 2.0 + 3.0 * h * cfg.intermediate_size as f64;
    let n = l * per_layer + h * cfg.vocab_size as f64;
    let attn = l * qd * seq as f64;
    let step_flops = 6.0 * n + 12.0 * attn;
    match step {
        "forward" => step_flops / 3.0,
        "ift" => step_flops + 2.0 * n + 4.0 * attn,
        _ => step_flops,
    }
}
