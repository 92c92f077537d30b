//! `ift bench`: one measurement of a training step or a forward on a random
//! model of a benchmark configuration, printed as one JSON line (what
//! `scripts/bench/run.sh` and `scripts/gpu/check.sh` put beside PyTorch's).

use anyhow::Result;
mod matmul;
mod step;

use ift::model::presets::preset as model_config;
use ift::train::TrainDtype;
use step::{flops_per_token, run_bench, BenchSpec};
pub use step::{MIN_BATCH, MIN_SEQ};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Benchmark model: 32m, smollm2 (SmolLM2-135M's config) or 1b (Llama 3.2 1B's shapes).
    model: String,
    /// forward, sft, ift or dpo; or matmul: the step's projection and head
    /// matmuls shape by shape on candle's gemm and on the engine's backend
    /// (OpenBLAS in an `--features openblas` build), one JSON line each.
    step: String,
    /// Sequences per step (DPO: half as many pairs); at least 2.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = crate::number_arg::bench_batch)]
    batch: usize,
    /// Tokens per sequence; at least 4.
    #[arg(long, default_value_t = 256, allow_negative_numbers = true, value_parser = crate::number_arg::bench_seq)]
    seq: usize,
    /// sft and ift: the first N tokens of each sequence are a prompt, out
    /// of the loss (0: every position is trained, as PyTorch's side does);
    /// less than --seq.
    #[arg(long, default_value_t = 0)]
    prompt: usize,
    /// f32 or bf16 (mixed precision, as train.dtype).
    #[arg(long, default_value = "f32")]
    dtype: TrainDtype,
    #[command(flatten)]
    device: crate::device_arg::DeviceArg,
    /// TF32 matmuls for f32 on CUDA (train.tf32).
    #[arg(long)]
    tf32: bool,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1, env = "BENCH_WARMUP")]
    warmup: usize,
    /// Timed steps (the median is reported); at least 1.
    #[arg(long, default_value_t = 3, env = "BENCH_ITERS", allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    iters: usize,
}

/// Peak resident set of this process so far, in MiB (`VmHWM`; NaN off Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.prompt >= args.seq {
        let m = format!(
            "--prompt {} must be less than --seq {} (at least one position is trained)",
            args.prompt, args.seq
        );
        return Err(ift::Error::Usage(m).into());
    }
    let device = args.device.open()?;
    if args.step == "matmul" {
        return matmul(&args, &device);
    }
    ift::device::allow_tf32(args.tf32);
    let spec = BenchSpec {
        model: args.model.clone(),
        step: args.step.clone(),
        batch: args.batch,
        seq: args.seq,
        prompt: args.prompt,
        dtype: args.dtype.dtype(),
        warmup: args.warmup,
        iters: args.iters,
    };
    let r = run_bench(&spec, &device)?;
    let flops = flops_per_token(&model_config(&args.model)?, &args.step, args.seq);
    let line = serde_json::json!({
        "impl": "ift", "model": args.model, "step": args.step, "device": args.device.device.to_string(),
        "dtype": args.dtype.to_string(), "batch": args.batch, "seq": args.seq, "prompt": args.prompt,
        "threads": candle_core::utils::get_num_threads(), "matmul": ift::engine::matmul_backend(),
        "iters": spec.iters, "median_s": r.median_s, "min_s": r.min_s,
        "tokens_per_s": r.tokens_per_s, "flops_per_token": flops,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{line}");
    Ok(())
}

/// `ift bench MODEL matmul`: one line per shape, then the step's total.
fn matmul(args: &BenchArgs, device: &candle_core::Device) -> Result<()> {
    if !device.is_cpu() {
        anyhow::bail!("--device: `ift bench MODEL matmul` compares CPU backends; use --device cpu");
    }
    let cfg = model_config(&args.model)?;
    let rows = args.batch * args.seq;
    let timings = matmul::run_matmul_bench(&cfg, rows, args.iters)?;
    let engine = ift::engine::matmul_backend();
    let threads = candle_core::utils::get_num_threads();
    for t in &timings {
        let s = &t.shape;
        let line = serde_json::json!({
            "impl": "ift", "model": args.model, "step": "matmul", "what": s.what,
            "m": s.m, "k": s.k, "n": s.n, "per_step": s.per_step, "threads": threads,
            "gemm_gflops": t.candle_gflops, "engine": engine, "engine_gflops": t.engine_gflops,
        });
        println!("{line}");
    }
    let (gemm_s, engine_s) = matmul::step_seconds(&timings);
    let line = serde_json::json!({
        "impl": "ift", "model": args.model, "step": "matmul", "what": "step total", "rows": rows,
        "threads": threads, "gemm_s": gemm_s, "engine": engine, "engine_s": engine_s,
    });
    println!("{line}");
    Ok(())
}
