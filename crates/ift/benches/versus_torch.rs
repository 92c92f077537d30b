//! One measurement of `ift`'s engine per process, for `scripts/bench/run.sh`,
//! which runs the same measurement in PyTorch + transformers
//! (`scripts/bench/versus_torch.py`) before and after this one and divides.
//! One process per measurement, so that the peak RSS printed (`VmHWM`) is
//! that measurement's.
//!
//! `cargo bench -p ift --bench versus_torch -- MODEL STEP` with MODEL `32m` or
//! `smollm2` (SmolLM2-135M's config, random weights: speed and memory do not
//! depend on the values) and STEP `forward` (no-grad log-probabilities, as
//! `ift eval`/`score` compute them), `sft`, `ift` or `dpo` (the trainer's
//! real step: objective, backward, clipping, AdamW). Batch: 4 sequences ×
//! 256 tokens (DPO: 2 pairs, 128 prompt + 128 answer tokens each, cached
//! reference log-probabilities). `BENCH_WARMUP` (default 1), `BENCH_ITERS`
//! (default 3).

use std::time::Instant;

use candle_core::Device;
use ift::data::{EncodedExample, EncodedPreference, SequenceBatch};
use ift::engine::forward_logps;
use ift::model::{LlamaConfig, LlamaForCausalLM, ModelInput, Trainable};
use ift::objective::{Objective, ObjectiveKind};
use ift::reference::prepare_reference_logps;
use ift::train::{
    clip_grad_norm, step_passes, Engine, Optimizer, OptimizerConfig, OptimizerKind, Reference,
    StepBatch, StepContext, StepEnv, PAD_ID,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/config_32m.rs"]
mod config;

const BATCH: usize = 4;
const SEQ: usize = 256;

/// SmolLM2-135M's `config.json` (keep in step with `versus_torch.py`).
fn config_smollm2() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 49152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_hidden_layers: 30,
        num_attention_heads: 9,
        num_key_value_heads: 3,
        rms_norm_eps: 1e-5,
        rope_theta: 100000.0,
        max_position_embeddings: 8192,
        tie_word_embeddings: true,
        ..config::config_32m()
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set of this process so far, in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn random_ids(rng: &mut StdRng, n: usize, vocab: u32) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(0..vocab)).collect()
}

fn main() -> ift::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (model_name, step) = match args.as_slice() {
        [m, s, ..] => (m.as_str(), s.as_str()),
        _ => ("32m", "sft"),
    };
    let cfg = match model_name {
        "32m" => config::config_32m(),
        "smollm2" => config_smollm2(),
        other => return Err(ift::Error::Train(format!("unknown bench model `{other}`"))),
    };
    let dev = Device::Cpu;
    let vocab = cfg.vocab_size as u32;
    let trainable = if step == "forward" {
        Trainable::None
    } else {
        Trainable::All
    };
    let model = LlamaForCausalLM::random(cfg, 0.02, 0, &trainable, &dev)?;
    let mut rng = StdRng::seed_from_u64(0);
    let seqs: Vec<EncodedExample> = (0..BATCH)
        .map(|_| EncodedExample {
            input_ids: random_ids(&mut rng, SEQ, vocab),
            loss_mask: (0..SEQ).map(|i| i > 0).collect(),
        })
        .collect();
    let pairs: Vec<EncodedPreference> = (0..BATCH / 2)
        .map(|_| {
            let prompt = random_ids(&mut rng, SEQ / 2, vocab);
            let mut answer = || {
                let mut ids = prompt.clone();
                ids.extend(random_ids(&mut rng, SEQ / 2, vocab));
                EncodedExample {
                    loss_mask: (0..SEQ).map(|i| i >= SEQ / 2).collect(),
                    input_ids: ids,
                }
            };
            EncodedPreference {
                chosen: answer(),
                rejected: answer(),
            }
        })
        .collect();
    let (warmup, iters) = (env_usize("BENCH_WARMUP", 1), env_usize("BENCH_ITERS", 3));
    let mut times = Vec::new();
    if step == "forward" {
        let refs: Vec<&EncodedExample> = seqs.iter().collect();
        let t = SequenceBatch::collate(&refs, PAD_ID).to_tensors(&dev)?;
        for _ in 0..warmup + iters {
            let start = Instant::now();
            let ids = &t.input_ids;
            forward_logps(&model, ModelInput::Ids(ids), &t.attention_mask, ids, false)?;
            times.push(start.elapsed().as_secs_f64());
        }
    } else {
        let kind = match step {
            "sft" => ObjectiveKind::Sft,
            "ift" => ObjectiveKind::Ift,
            "dpo" => ObjectiveKind::Dpo,
            other => return Err(ift::Error::Train(format!("unknown bench step `{other}`"))),
        };
        let objective = Objective::default_of(kind);
        let sequences: Vec<EncodedExample> = pairs
            .iter()
            .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
            .collect();
        let cache = std::env::temp_dir().join(format!("ift-bench-ref-{}", std::process::id()));
        let mut load = || Ok(model.detached());
        let (logps, _) = prepare_reference_logps(
            &sequences,
            &cache,
            "bench",
            &mut load,
            BATCH,
            &dev,
            &mut |_, _| {},
        )?;
        let _ = std::fs::remove_dir_all(&cache);
        let (sr, pr): (Vec<_>, Vec<_>) = (seqs.iter().collect(), pairs.iter().collect());
        let batch = match kind {
            ObjectiveKind::Dpo => StepBatch::Pairs(&pr),
            _ => StepBatch::Sequences(&sr),
        };
        let opt = OptimizerConfig {
            kind: OptimizerKind::AdamW,
            ..OptimizerConfig::default()
        };
        let mut optimizer = Optimizer::new(opt, model.parameters().vars().to_vec())
            .map_err(|e| ift::Error::Train(e.to_string()))?;
        for i in 0..warmup + iters {
            let start = Instant::now();
            let env = StepEnv {
                objective: &objective,
                reference: Reference {
                    logps: Some(&logps),
                    model: None,
                },
                ctx: StepContext {
                    step: i as u64,
                    seed: 0,
                },
                device: &dev,
                engine: Engine::default(),
            };
            let mut passes = step_passes(&model, batch, BATCH, &env, true)?;
            clip_grad_norm(&mut passes.grads, optimizer.vars(), 1.0)
                .map_err(|e| ift::Error::Train(e.to_string()))?;
            optimizer
                .step(&passes.grads, 1e-5)
                .map_err(|e| ift::Error::Train(e.to_string()))?;
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let mut timed = times[warmup..].to_vec();
    timed.sort_by(f64::total_cmp);
    let median = timed[timed.len() / 2];
    let line = serde_json::json!({
        "impl": "ift", "model": model_name, "step": step,
        "threads": candle_core::utils::get_num_threads(),
        "iters": iters, "median_s": median, "min_s": timed[0],
        "tokens_per_s": (BATCH * SEQ) as f64 / median,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{line}");
    Ok(())
}
