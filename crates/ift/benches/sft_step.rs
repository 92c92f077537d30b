//! Throughput of one SFT step of our decoder on the "32M" Llama config (CPU,
//! f32, batch 4 × 256 tokens): the same figures `scripts/bench/sft_step_torch.py`
//! measures for PyTorch, printed in the same JSON line + table format so
//! `scripts/bench/compare.sh` can divide one by the other.
//!
//! `cargo bench -p ift --bench sft_step`. Environment: `SFT_BENCH_WARMUP`
//! (untimed steps, default 2), `SFT_BENCH_ITERS` (timed steps, default 10),
//! `SFT_BENCH_ONLY` (run just the measurement of that name, e.g. under
//! `perf record`), `SFT_BENCH_SPLIT=1` (also time forward+loss and backward
//! separately inside step (b), and the explicit engine's passes: IFT's
//! greedy pass, a forward with its tape, its backward), `SFT_BENCH_PARTS=1` (time the pieces of
//! step (b) in isolation: see `support/parts.rs`).

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};
use config::config_32m;
use ift::data::EncodedExample;
use ift::engine::{forward_greedy, forward_logps};
use ift::loss::token_logprobs;
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};
use ift::objective::{IftParams, Objective, SftParams};
use ift::train::{
    clip_grad_norm, forward_backward, Engine, Optimizer, OptimizerConfig, OptimizerKind,
    StepContext,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[path = "support/config_32m.rs"]
mod config;
#[path = "support/fused.rs"]
mod fused;
#[path = "support/parts.rs"]
mod parts;

const BATCH: usize = 4;
const SEQ: usize = 256;
const SEED: u64 = 0;

struct Opts {
    warmup: usize,
    iters: usize,
    only: Option<String>,
    split: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measurement: the median and fastest of the timed steps.
struct Figure {
    name: String,
    median_s: f64,
    min_s: f64,
}

impl Figure {
    fn tokens_per_s(&self) -> f64 {
        (BATCH * SEQ) as f64 / self.median_s
    }
}

/// Runs `step` `warmup` times untimed, then `iters` times timed. Every
/// measurement goes through here, so the optimiser step (c) is one more call
/// whose closure runs forward, backward and the update.
fn measure(name: &str, opts: &Opts, mut step: impl FnMut() -> Result<()>) -> Result<Figure> {
    for _ in 0..opts.warmup {
        step()?;
    }
    let mut times: Vec<f64> = (0..opts.iters.max(1))
        .map(|_| {
            let start = Instant::now();
            step().map(|()| start.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    // The same median as Python's `statistics.median`: mean of the middle
    // two for an even count.
    let n = times.len();
    Ok(Figure {
        name: name.to_string(),
        median_s: (times[(n - 1) / 2] + times[n / 2]) / 2.0,
        min_s: times[0],
    })
}

/// Mean next-token negative log-likelihood over every position, the same
/// quantity as PyTorch's `cross_entropy(logits[:, :-1], ids[:, 1:])`.
fn mean_nll(model: &LlamaForCausalLM, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let logits = model.forward(ModelInput::Ids(ids), mask)?;
    token_logprobs(&logits, ids)?.neg()?.mean_all()
}

fn main() -> Result<()> {
    let opts = Opts {
        warmup: env_usize("SFT_BENCH_WARMUP", 2),
        iters: env_usize("SFT_BENCH_ITERS", 10),
        only: std::env::var("SFT_BENCH_ONLY").ok(),
        split: std::env::var("SFT_BENCH_SPLIT").is_ok_and(|v| v == "1"),
    };
    let wanted = |name: &str| opts.only.as_deref().is_none_or(|o| o == name);
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(SEED);
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| rng.random_range(0..config_32m().vocab_size as u32))
        .collect();
    let ids = Tensor::from_vec(ids, (BATCH, SEQ), &dev)?;
    let mask = Tensor::ones((BATCH, SEQ), DType::F32, &dev)?;
    let mut figures = Vec::new();

    if wanted("forward") {
        let model = LlamaForCausalLM::random(config_32m(), 0.02, SEED, &Trainable::None, &dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        figures.push(measure("forward", &opts, || {
            model.forward(ModelInput::Ids(&ids), &mask).map(drop)
        })?);
    }
    let model = LlamaForCausalLM::random(config_32m(), 0.02, SEED, &Trainable::All, &dev)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    if wanted("forward_backward") {
        figures.push(measure("forward_backward", &opts, || {
            mean_nll(&model, &ids, &mask)?.backward().map(drop)
        })?);
    }
    if opts.split && wanted("forward_backward") {
        let mut loss = None;
        figures.push(measure("  forward+loss (graph)", &opts, || {
            loss = Some(mean_nll(&model, &ids, &mask)?);
            Ok(())
        })?);
        let loss = loss.expect("measured at least once");
        figures.push(measure("  backward", &opts, || loss.backward().map(drop))?);
    }
    // The explicit engine's passes, which an IFT step adds up to (an SFT
    // step is the last two): IFT's greedy prediction pass, a forward keeping
    // its tape, and the tape's backward to every parameter.
    if opts.split && wanted("engine_passes") {
        figures.push(measure("  engine: greedy pass (IFT)", &opts, || {
            forward_greedy(&model, ModelInput::Ids(&ids), &mask, &ids, None).map(drop)
        })?);
        let mut tape = None;
        figures.push(measure("  engine: forward + tape", &opts, || {
            tape = forward_logps(&model, ModelInput::Ids(&ids), &mask, &ids, None, true)?.1;
            Ok(())
        })?);
        let tape = tape.expect("a training forward keeps its tape");
        let dlogp = Tensor::full(-1.0 / (BATCH * (SEQ - 1)) as f32, (BATCH, SEQ - 1), &dev)?;
        figures.push(measure("  engine: backward", &opts, || {
            tape.backward(&model, &dlogp).map(drop)
        })?);
    }
    // (c) the trainer's real step: forward/backward through the objective,
    // clipping, AdamW. SFT, then IFT (one more graph-free forward).
    let steps: Vec<(&str, Objective, Engine)> = vec![
        (
            "train_step_sft",
            Objective::Sft(SftParams::default()),
            Engine::Explicit,
        ),
        (
            "train_step_ift",
            Objective::Ift(IftParams::default()),
            Engine::Explicit,
        ),
        (
            "train_step_sft_graph",
            Objective::Sft(SftParams::default()),
            Engine::Graph,
        ),
        (
            "train_step_ift_graph",
            Objective::Ift(IftParams::default()),
            Engine::Graph,
        ),
    ];
    for (name, objective, engine) in steps {
        if !wanted(name) && !wanted("train_step") {
            continue;
        }
        let ids_rows: Vec<Vec<u32>> = ids.to_vec2()?;
        let data: Vec<EncodedExample> = ids_rows
            .into_iter()
            .map(|row| EncodedExample {
                loss_mask: (0..row.len()).map(|i| i > 0).collect(),
                input_ids: row,
            })
            .collect();
        let refs: Vec<&EncodedExample> = data.iter().collect();
        let opt_config = OptimizerConfig {
            kind: OptimizerKind::AdamW,
            ..OptimizerConfig::default()
        };
        let mut optimizer = Optimizer::new(opt_config, model.parameters().vars().to_vec())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut step = 0;
        figures.push(measure(name, &opts, || {
            let ctx = StepContext { step, seed: SEED };
            step += 1;
            let mut passes = forward_backward(&model, &refs, BATCH, &objective, ctx, &dev, engine)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            clip_grad_norm(&mut passes.grads, optimizer.vars(), 1.0)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            optimizer
                .step(&passes.grads, 1e-5)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        })?);
    }
    let ms = |n: &str| figures.iter().find(|f| f.name == n).map(|f| f.median_s);
    if let (Some(sft), Some(ift)) = (ms("train_step_sft"), ms("train_step_ift")) {
        println!(
            "IFT step / SFT step = {:.3} (one extra forward: about 1 + forward / SFT step, 4/3 in FLOPs)",
            ift / sft
        );
    }
    if std::env::var("SFT_BENCH_PARTS").is_ok_and(|v| v == "1") {
        figures.extend(parts::run(&opts, &ids)?);
    }
    report(&figures, &opts);
    Ok(())
}

fn report(figures: &[Figure], opts: &Opts) {
    let results: Vec<serde_json::Value> = figures
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name.trim(), "attn": "candle",
                "ms": f.median_s * 1e3, "min_ms": f.min_s * 1e3,
                "tokens_per_s": f.tokens_per_s(),
            })
        })
        .collect();
    let line = serde_json::json!({
        "impl": "ift-candle", "candle": "0.11",
        "threads": candle_core::utils::get_num_threads(),
        "avx512": cfg!(feature = "avx512"),
        "batch": BATCH, "seq": SEQ, "config": "32M",
        "warmup": opts.warmup, "iters": opts.iters, "stat": "median",
        "results": results,
    });
    println!("{line}");
    println!(
        "{:<26} {:>8} {:>10} {:>11}",
        "measurement", "attn", "ms/step", "tokens/s"
    );
    for f in figures {
        println!(
            "{:<26} {:>8} {:>10.1} {:>11.0}",
            f.name,
            "candle",
            f.median_s * 1e3,
            f.tokens_per_s()
        );
    }
}
