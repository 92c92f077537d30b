//! `ift demo`: the main job on the embedded default, nothing downloaded. A
//! tiny random Llama learns to reverse words with SFT and with IFT, side by
//! side (same steps, same seed); the report shows loss curves, held-out exact
//! match and loss, and IFT's step cost relative to SFT's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use ift::config::RunConfig;
use ift::demo::{exact_match, split, write_base_model, Problem};
use ift::model::{Pretrained, Trainable};
use ift::objective::{IftParams, Objective, SftParams};
use ift::train::{OptimizerKind, RunEnd, ScheduleKind};

use crate::train::run_training;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Parent directory of the demo's run (a fresh numbered one is made, so
    /// earlier demos are never overwritten).
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Optimiser steps (16 sequences each).
    #[arg(long, default_value_t = 300)]
    steps: u64,
    /// Seed of the model, the task and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Held-out problems scored for exact match.
    #[arg(long, default_value_t = 100)]
    eval_problems: usize,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let dir = fresh_dir(&args.out)?;
    let base = dir.join("base");
    write_base_model(&base, args.seed)?;
    let (train, eval) = split(4000, args.eval_problems, args.seed);
    write_records(&dir.join("train.jsonl"), &train)?;
    write_records(&dir.join("eval.jsonl"), &eval)?;
    eprintln!(
        "demo in {}: random {}-parameter Llama, task: reverse a word",
        dir.display(),
        param_count(&base)?
    );
    let before = score(&base, &eval)?;

    let mut outcomes = Vec::new();
    let objectives = [
        Objective::Sft(SftParams::default()),
        Objective::Ift(IftParams::default()),
    ];
    for objective in objectives {
        let config = demo_config(&dir, &base, objective, &args);
        let name = config
            .train
            .output_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        ift::model::write_file_atomically(
            &dir.join(format!("{name}.toml")),
            config.to_toml().as_bytes(),
        )?;
        eprintln!("-- {name} --");
        let RunEnd::Finished {
            final_dir,
            last_eval,
        } = run_training(&config, None)?
        else {
            eprintln!(
                "stopped early; resume with `ift train --resume {}`",
                config.train.output_dir.display()
            );
            return Ok(());
        };
        let metrics = std::fs::read_to_string(config.train.output_dir.join("metrics.jsonl"))?;
        ift_cli::plot::run(ift_cli::plot::PlotArgs {
            run_dir: config.train.output_dir.clone(),
            out: None,
        })?;
        outcomes.push(Outcome {
            name,
            exact_match: score(&final_dir, &eval)?,
            eval_loss: last_eval.map_or(f64::NAN, |e| e.eval_loss),
            seconds_per_step: mean_step_seconds(&metrics),
            curve: sparkline(&metrics),
            final_dir,
        });
    }
    println!(
        "\n== ift demo: word reversal, {} steps each, same seed ==",
        args.steps
    );
    println!(
        "exact match on {} held-out words before training: {:.1}%",
        eval.len(),
        100.0 * before
    );
    println!(
        "{:<5} {:>12} {:>10} {:>10}  training loss",
        "", "exact match", "eval loss", "s/step"
    );
    for o in &outcomes {
        println!(
            "{:<5} {:>11.1}% {:>10.4} {:>10.3}  {}",
            o.name,
            100.0 * o.exact_match,
            o.eval_loss,
            o.seconds_per_step,
            o.curve
        );
    }
    if let [sft, ift] = &outcomes[..] {
        println!(
            "IFT step cost relative to SFT: {:.2}x (the extra no-gradient forward)",
            ift.seconds_per_step / sft.seconds_per_step
        );
        println!(
            "checkpoints: {} and {} (Hugging Face model directories)",
            sft.final_dir.display(),
            ift.final_dir.display()
        );
    }
    println!(
        "runs, metrics.jsonl, loss.png / lr.png and configs: {}",
        dir.display()
    );
    Ok(())
}

struct Outcome {
    name: String,
    exact_match: f64,
    eval_loss: f64,
    seconds_per_step: f64,
    curve: String,
    final_dir: PathBuf,
}

/// The demo's run configuration for one objective (IFT at the paper's λ, γ).
fn demo_config(dir: &Path, base: &Path, objective: Objective, args: &DemoArgs) -> RunConfig {
    let mut config = RunConfig::default();
    config.model.path = base.to_path_buf();
    config.data.train = dir.join("train.jsonl");
    config.data.eval = Some(dir.join("eval.jsonl"));
    config.data.max_length = Some(64);
    let name = objective.kind().name();
    config.objective = objective;
    let t = &mut config.train;
    (t.output_dir, t.seed, t.max_steps, t.epochs) = (dir.join(name), args.seed, args.steps, 0);
    (t.batch_size, t.micro_batch_size, t.lr, t.optimizer) = (16, 16, 3e-3, OptimizerKind::AdamW);
    (t.schedule, t.warmup_ratio, t.max_grad_norm) = (ScheduleKind::Cosine, 0.05, 1.0);
    (t.eval_every, t.save_every, t.keep_last) = ((args.steps / 4).max(1), 0, 1);
    config
}

/// Median seconds per optimiser step (robust to a slow first step).
fn mean_step_seconds(metrics: &str) -> f64 {
    let mut elapsed: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .filter_map(|v| Some(v.get("tokens")?.as_f64()? / v.get("tokens_per_s")?.as_f64()?))
        .collect();
    elapsed.sort_by(f64::total_cmp);
    elapsed.get(elapsed.len() / 2).copied().unwrap_or(f64::NAN)
}

fn score(model_dir: &Path, problems: &[Problem]) -> Result<f64> {
    let p = Pretrained::load(model_dir, &Trainable::None, &Device::Cpu)?;
    Ok(exact_match(&p.model, &p.tokenizer, problems)?)
}

fn param_count(dir: &Path) -> Result<String> {
    let p = Pretrained::load(dir, &Trainable::None, &Device::Cpu)?;
    Ok(format!("{:.1}M", p.model.parameters().count() as f64 / 1e6))
}

/// `<parent>/demo`, or `demo-2`, `demo-3`, ... if taken.
fn fresh_dir(parent: &Path) -> Result<PathBuf> {
    for i in 1.. {
        let name = if i == 1 {
            "demo".to_string()
        } else {
            format!("demo-{i}")
        };
        let dir = parent.join(name);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            return Ok(dir);
        }
    }
    unreachable!("some numbered directory is free")
}

fn write_records(path: &Path, problems: &[Problem]) -> Result<()> {
    let lines: Vec<String> = problems.iter().map(|p| p.to_record().to_string()).collect();
    Ok(ift::model::write_file_atomically(
        path,
        (lines.join("\n") + "\n").as_bytes(),
    )?)
}

/// The training-loss curve as one line of block characters, first and last values beside it.
fn sparkline(metrics: &str) -> String {
    let losses: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("loss").and_then(|x| x.as_f64()))
        .collect();
    let (Some(&first), Some(&last)) = (losses.first(), losses.last()) else {
        return "(no steps)".into();
    };
    let (lo, hi) = losses
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let bars = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let width = 48.min(losses.len());
    let line: String = (0..width)
        .map(|i| {
            let chunk = &losses[i * losses.len() / width
                ..((i + 1) * losses.len() / width).max(i * losses.len() / width + 1)];
            let mean = chunk.iter().sum::<f64>() / chunk.len() as f64;
            bars[(((mean - lo) / (hi - lo).max(1e-12)) * 7.0).round() as usize]
        })
        .collect();
    format!("{first:.3} {line} {last:.3}")
}
