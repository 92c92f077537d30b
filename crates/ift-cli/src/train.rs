//! `ift train`: fine-tune a model as a TOML run configuration says; resume
//! an interrupted run with `--resume <output_dir>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ift::config::RunConfig;
use ift::data::{load_dataset, ChatTemplate, TemplateOptions};
use ift::eval::tasks::{Benchmarks, EvalOptions};
use ift::model::Pretrained;
use ift::train::{latest_checkpoint, train, Run, RunEnd, CONFIG_FILE};

use crate::observer::ProgressObserver;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML). Not needed with --resume.
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Override a key: `--set train.lr=1e-5` (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in this output directory from its newest checkpoint.
    #[arg(long, conflicts_with = "config")]
    resume: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let (config, resume) = match &args.resume {
        Some(dir) => {
            let ck = latest_checkpoint(dir)?.with_context(|| {
                format!(
                    "{}: no complete checkpoint-<step> to resume from",
                    dir.display()
                )
            })?;
            let path = ck.join(CONFIG_FILE);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            (
                RunConfig::parse(&text, &path.display().to_string(), &args.overrides)?,
                Some(ck),
            )
        }
        None => {
            let path = args
                .config
                .as_ref()
                .expect("clap requires --config without --resume");
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (
                RunConfig::parse(&text, &path.display().to_string(), &args.overrides)?,
                None,
            )
        }
    };
    match run_training(&config, resume.as_deref())? {
        RunEnd::Finished {
            final_dir,
            last_eval,
        } => {
            if let Some(e) = last_eval {
                eprintln!(
                    "eval_loss {:.4} (perplexity {:.2})",
                    e.eval_loss, e.eval_ppl
                );
            }
            eprintln!("done: model in {}", final_dir.display());
        }
        RunEnd::Stopped { checkpoint } => {
            eprintln!(
                "stopped: checkpoint in {}; continue with `ift train --resume {}`",
                checkpoint.display(),
                config.train.output_dir.display()
            );
        }
    }
    Ok(())
}

/// Everything between a resolved config and a finished (or stopped) run.
/// `resume` is a checkpoint directory: the model and optimiser come from it.
pub fn run_training(config: &RunConfig, resume: Option<&Path>) -> Result<RunEnd> {
    let out = &config.train.output_dir;
    prepare_output_dir(out, resume.is_some())?;
    // Written before anything slow, so an unwritable directory fails at once.
    let config_toml = config.to_toml();
    let path = out.join(CONFIG_FILE);
    std::fs::write(&path, &config_toml).with_context(|| format!("writing {}", path.display()))?;

    let device = Device::Cpu;
    let model_dir = resume.unwrap_or(&config.model.path);
    let pretrained = Pretrained::load(model_dir, &config.trainable(), &device)?;
    let options = config.data.load_options();
    let (train_set, summary) = load_dataset(&config.data.train, &pretrained.tokenizer, &options)?;
    eprintln!("{summary}");
    if train_set.is_empty() {
        bail!(
            "{}: no training examples left after encoding",
            config.data.train.display()
        );
    }
    let eval_set = match &config.data.eval {
        Some(p) => {
            let (set, summary) = load_dataset(p, &pretrained.tokenizer, &options)?;
            eprintln!("{summary}");
            set
        }
        None => Vec::new(),
    };
    let template_options = TemplateOptions {
        name: config.data.template.clone(),
        fallback: config.data.template_fallback,
    };
    let template = ChatTemplate::for_tokenizer(&pretrained.tokenizer, &template_options)?;
    let benchmarks = if config.train.eval_tasks.is_empty() {
        None
    } else {
        let options = EvalOptions {
            limit: Some(config.train.eval_limit).filter(|&n| n > 0),
            batch_size: config.train.micro_batch_size,
            seed: config.train.seed,
            ..EvalOptions::default()
        };
        Some(Benchmarks::load(
            &config.train.eval_tasks,
            &pretrained.tokenizer,
            template.as_ref(),
            options,
        )?)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C asks the loop to write a checkpoint and stop; a second one quits.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: writing a checkpoint before exiting (Ctrl-C again to quit now)");
    });
    let run = Run {
        train: &train_set,
        eval: &eval_set,
        config: &config.train,
        objective: &config.objective,
        config_toml: &config_toml,
        companions: &pretrained.dir,
        device: &device,
        benchmarks: benchmarks.as_ref(),
    };
    let mut observer = ProgressObserver::default();
    Ok(train(
        &pretrained.model,
        &run,
        resume,
        &stop,
        &mut observer,
    )?)
}

/// Creates the output directory; refuses to overwrite an earlier run's
/// checkpoints unless resuming.
fn prepare_output_dir(out: &Path, resuming: bool) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create train.output_dir {}", out.display()))?;
    if !resuming && (latest_checkpoint(out)?.is_some() || out.join("final").exists()) {
        bail!(
            "train.output_dir {} already holds a run; resume it with `ift train --resume {}` or choose another directory",
            out.display(),
            out.display()
        );
    }
    Ok(())
}
