//! `ift demo`: the main job on the embedded default, nothing downloaded. A
//! tiny random Llama learns to reverse words with SFT and with IFT, side by
//! side (same steps, same seed), for several seeds: this task has a plateau
//! whose end small numeric changes move, so one seed says little. The report
//! shows each seed's held-out exact match and loss, their mean and range, a
//! conclusion worded to what the seeds support (`crate::demo_task::verdict`), loss
//! curves and IFT's step cost relative to SFT's.

use std::path::{Path, PathBuf};

use crate::demo_task::{exact_match, split, write_base_model, Problem};
use anyhow::{Context, Result};
use candle_core::Device;
use ift::config::RunConfig;
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
    /// Optimiser steps (16 sequences each); at least 1.
    #[arg(long, default_value_t = 300, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one_u64)]
    steps: u64,
    /// First seed of the model, the task and the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seeds run (`seed`, `seed + 1`, ...), each with SFT and IFT; at least 1.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one_u64)]
    seeds: u64,
    /// Held-out problems scored for exact match; at least 1.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    eval_problems: usize,
}

pub fn run(args: DemoArgs) -> Result<()> {
    // `--seeds` is at least 1 (its parser).
    let Some(last) = args.seed.checked_add(args.seeds - 1) else {
        let m = format!(
            "--seed {} + --seeds {} is past the last seed ({})",
            args.seed,
            args.seeds,
            u64::MAX
        );
        return Err(ift::Error::Usage(m).into());
    };
    let dir = fresh_dir(&args.out)?;
    let mut seeds = Vec::new();
    for seed in args.seed..=last {
        let Some(s) = run_seed(&dir.join(format!("seed-{seed}")), seed, &args)? else {
            return Ok(());
        };
        seeds.push(s);
    }
    report(&seeds, &args, &dir);
    Ok(())
}

/// One seed: its base model and data, then SFT and IFT on them. `None`: a
/// run was interrupted (it said how to resume).
fn run_seed(dir: &Path, seed: u64, args: &DemoArgs) -> Result<Option<Seed>> {
    let base = dir.join("base");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_base_model(&base, seed)?;
    let (train, eval) = split(4000, args.eval_problems, seed);
    write_records(&dir.join("train.jsonl"), &train)?;
    write_records(&dir.join("eval.jsonl"), &eval)?;
    eprintln!(
        "== seed {seed}: random {}-parameter Llama in {}, task: reverse a word",
        param_count(&base)?,
        dir.display()
    );
    let before = score(&base, &eval)?;
    let mut outcomes = Vec::new();
    let objectives = [
        Objective::Sft(SftParams::default()),
        Objective::Ift(IftParams::default()),
    ];
    for objective in objectives {
        let config = demo_config(dir, &base, objective, seed, args);
        let name = config.objective.kind().name().to_string();
        ift::model::write_file_atomically(
            &dir.join(format!("{name}.toml")),
            config.to_toml().as_bytes(),
        )?;
        eprintln!("-- seed {seed}: {name} --");
        let RunEnd::Finished {
            final_dir,
            last_eval,
        } = run_training(&config, None)?
        else {
            eprintln!(
                "stopped early; resume with `ift train --resume {}`",
                config.train.output_dir.display()
            );
            return Ok(None);
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
        });
    }
    Ok(Some(Seed {
        seed,
        before,
        outcomes,
    }))
}

fn report(seeds: &[Seed], args: &DemoArgs, dir: &Path) {
    println!(
        "\n== ift demo: word reversal, {} steps each, {} seed(s), {} held-out words per seed ==",
        args.steps,
        seeds.len(),
        args.eval_problems
    );
    println!(
        "{:<6} {:<5} {:>12} {:>10} {:>10}  training loss",
        "seed", "", "exact match", "eval loss", "s/step"
    );
    for s in seeds {
        for o in &s.outcomes {
            println!(
                "{:<6} {:<5} {:>11.1}% {:>10.4} {:>10.3}  {}",
                s.seed,
                o.name,
                100.0 * o.exact_match,
                o.eval_loss,
                o.seconds_per_step,
                o.curve
            );
        }
    }
    let column = |i: usize, f: fn(&Outcome) -> f64| -> Vec<f64> {
        seeds.iter().map(|s| f(&s.outcomes[i])).collect()
    };
    let (sft, ift) = (column(0, |o| o.exact_match), column(1, |o| o.exact_match));
    let before: Vec<f64> = seeds.iter().map(|s| s.before).collect();
    println!("exact match before training: {}", spread(&before));
    println!("exact match after SFT:       {}", spread(&sft));
    println!("exact match after IFT:       {}", spread(&ift));
    println!(
        "conclusion: {}",
        crate::demo_task::verdict(&sft, &ift, args.eval_problems)
    );
    let cost: Vec<f64> = seeds
        .iter()
        .map(|s| s.outcomes[1].seconds_per_step / s.outcomes[0].seconds_per_step)
        .collect();
    println!(
        "IFT step cost relative to SFT: {} (the extra no-gradient forward)",
        spread_x(&cost)
    );
    println!(
        "runs (Hugging Face checkpoints, metrics.jsonl, loss.png / lr.png, configs): {}",
        dir.display()
    );
}

/// `mean 45.0% (min 2.0%, max 99.0%)` of rates.
fn spread(rates: &[f64]) -> String {
    let (mean, lo, hi) = stats(rates);
    format!(
        "mean {:.1}% (min {:.1}%, max {:.1}%)",
        100.0 * mean,
        100.0 * lo,
        100.0 * hi
    )
}

fn spread_x(ratios: &[f64]) -> String {
    let (mean, lo, hi) = stats(ratios);
    format!("{mean:.2}x (min {lo:.2}x, max {hi:.2}x)")
}

fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, lo, hi)
}

struct Seed {
    seed: u64,
    before: f64,
    /// SFT, then IFT.
    outcomes: Vec<Outcome>,
}

struct Outcome {
    name: String,
    exact_match: f64,
    eval_loss: f64,
    seconds_per_step: f64,
    curve: String,
}

/// The demo's run configuration for one objective (IFT at the paper's λ, γ).
fn demo_config(
    dir: &Path,
    base: &Path,
    objective: Objective,
    seed: u64,
    args: &DemoArgs,
) -> RunConfig {
    let mut config = RunConfig::default();
    config.model.path = base.to_path_buf();
    config.data.train = dir.join("train.jsonl");
    config.data.eval = Some(dir.join("eval.jsonl"));
    config.data.max_length = Some(64);
    let name = objective.kind().name();
    config.objective = objective;
    let t = &mut config.train;
    (t.output_dir, t.seed, t.max_steps, t.epochs) = (dir.join(name), seed, args.steps, 0);
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
