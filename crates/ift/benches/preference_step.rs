//! Step time of every preference objective relative to an SFT step on the
//! same model and the same tokens (the 32M config, CPU, f32): 2 pairs of
//! 128 prompt + 128 answer tokens each — 4 sequences × 256, as `sft_step`'s
//! batch — with clipping and AdamW. DPO is timed with its cached reference
//! log-probabilities (what `ift` does) and without (a reference forward over
//! both answers inside every step, as a trainer without a cache pays).
//!
//! `cargo bench -p ift --bench preference_step`; `PREF_BENCH_ITERS` (timed
//! steps, default 5) and `PREF_BENCH_WARMUP` (default 1).

use std::time::Instant;

use candle_core::Device;
use config::config_32m;
use ift::data::{EncodedExample, EncodedKto, EncodedPreference};
use ift::eval::score_sequences;
use ift::model::{LlamaForCausalLM, Trainable};
use ift::objective::{Objective, ObjectiveKind};
use ift::reference::prepare_reference_logps;
use ift::train::{
    clip_grad_norm, step_passes, Engine, Optimizer, OptimizerConfig, OptimizerKind, Reference,
    StepBatch, StepContext, StepEnv,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/config_32m.rs"]
mod config;

const PROMPT: usize = 128;
const ANSWER: usize = 128;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn example(rng: &mut StdRng, prompt: &[u32], vocab: u32) -> EncodedExample {
    let mut ids = prompt.to_vec();
    ids.extend((0..ANSWER).map(|_| rng.random_range(0..vocab)));
    EncodedExample {
        loss_mask: (0..ids.len()).map(|i| i >= PROMPT).collect(),
        input_ids: ids,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ift::Result<()> {
    let dev = Device::Cpu;
    let cfg = config_32m();
    let vocab = cfg.vocab_size as u32;
    let model = LlamaForCausalLM::random(cfg.clone(), 0.02, 0, &Trainable::All, &dev)?;
    let reference = LlamaForCausalLM::random(cfg.clone(), 0.02, 1, &Trainable::None, &dev)?;
    let mut rng = StdRng::seed_from_u64(0);
    let pairs: Vec<EncodedPreference> = (0..2)
        .map(|_| {
            let prompt: Vec<u32> = (0..PROMPT).map(|_| rng.random_range(0..vocab)).collect();
            EncodedPreference {
                chosen: example(&mut rng, &prompt, vocab),
                rejected: example(&mut rng, &prompt, vocab),
            }
        })
        .collect();
    let sequences: Vec<EncodedExample> = pairs
        .iter()
        .flat_map(|p| [p.chosen.clone(), p.rejected.clone()])
        .collect();
    let kto: Vec<EncodedKto> = sequences
        .iter()
        .enumerate()
        .map(|(i, e)| EncodedKto {
            example: e.clone(),
            label: i % 2 == 0,
        })
        .collect();
    let (pr, sr, kr): (Vec<_>, Vec<_>, Vec<_>) = (
        pairs.iter().collect(),
        sequences.iter().collect(),
        kto.iter().collect(),
    );
    let kl = ift::train::kto_kl_sequences(&kr);
    let mut needed = sequences.clone();
    needed.extend(kl);
    let cache = std::env::temp_dir().join(format!("ift-bench-ref-{}", std::process::id()));
    let mut load = || Ok(reference.clone());
    let (logps, _) =
        prepare_reference_logps(&needed, &cache, "bench", &mut load, 4, &dev, &mut |_, _| {})?;
    let _ = std::fs::remove_dir_all(&cache);
    let r = Reference {
        logps: Some(&logps),
        model: Some(&reference),
    };
    let (warmup, iters) = (
        env_usize("PREF_BENCH_WARMUP", 1),
        env_usize("PREF_BENCH_ITERS", 5),
    );
    let mut optimizer = Optimizer::new(
        OptimizerConfig {
            kind: OptimizerKind::AdamW,
            ..OptimizerConfig::default()
        },
        model.parameters().vars().to_vec(),
    )
    .map_err(|e| ift::Error::Train(e.to_string()))?;
    let cases = [
        ("sft", ObjectiveKind::Sft, false),
        ("dpo (cached reference)", ObjectiveKind::Dpo, false),
        ("dpo (reference each step)", ObjectiveKind::Dpo, true),
        ("orpo", ObjectiveKind::Orpo, false),
        ("simpo", ObjectiveKind::Simpo, false),
        ("tdpo", ObjectiveKind::Tdpo, false),
        ("kto", ObjectiveKind::Kto, false),
    ];
    let mut rows = Vec::new();
    for (name, kind, uncached) in cases {
        let objective = Objective::default_of(kind);
        let batch = match kind {
            ObjectiveKind::Sft => StepBatch::Sequences(&sr),
            ObjectiveKind::Kto => StepBatch::Unpaired(&kr),
            _ => StepBatch::Pairs(&pr),
        };
        let mut times = Vec::new();
        for i in 0..warmup + iters {
            let start = Instant::now();
            if uncached {
                // What an uncached trainer adds: the reference's forward over both answers.
                score_sequences(&reference, &sequences, 4, &dev, |_| {})?;
            }
            let env = StepEnv {
                objective: &objective,
                reference: r,
                ctx: StepContext {
                    step: i as u64,
                    seed: 0,
                },
                engine: Engine::default(),
                device: &dev,
            };
            let mut passes = step_passes(&model, batch, 4, &env, true)?;
            clip_grad_norm(&mut passes.grads, optimizer.vars(), 1.0)
                .map_err(|e| ift::Error::Train(e.to_string()))?;
            optimizer
                .step(&passes.grads, 1e-6)
                .map_err(|e| ift::Error::Train(e.to_string()))?;
            if i >= warmup {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        rows.push((name, median(times)));
    }
    let sft = rows[0].1;
    println!(
        "threads {}, 32M config, 4 sequences x {} tokens per step, median of {iters}",
        candle_core::utils::get_num_threads(),
        PROMPT + ANSWER
    );
    println!("{:<28} {:>9} {:>8}", "objective", "ms/step", "x SFT");
    for (name, t) in &rows {
        println!("{name:<28} {:>9.0} {:>8.2}", t * 1e3, t / sft);
    }
    Ok(())
}
