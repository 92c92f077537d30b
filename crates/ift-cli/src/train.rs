//! `ift train`: fine-tune a model as a TOML run configuration says; resume
//! an interrupted run with `--resume <output_dir>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use candle_core::Device;
use ift::config::RunConfig;
use ift::run::train_from_config;
use ift::train::{latest_checkpoint, RunEnd, CONFIG_FILE};

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
            if let Some(e) = last_eval.filter(|e| e.eval_tokens > 0) {
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

/// Everything between a resolved config and a finished (or stopped) run:
/// the library assembles the run; this adds Ctrl-C handling and progress.
/// `resume` is a checkpoint directory: the model and optimiser come from it.
pub fn run_training(config: &RunConfig, resume: Option<&Path>) -> Result<RunEnd> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C asks the loop to write a checkpoint and stop; a second one quits.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: writing a checkpoint before exiting (Ctrl-C again to quit now)");
    });
    let mut observer = ProgressObserver::default();
    let outcome = train_from_config(config, resume, &Device::Cpu, &stop, &mut observer)?;
    Ok(outcome.end)
}
