//! `ift train`: fine-tune a model as a TOML run configuration says; resume
//! an interrupted run with `--resume <output_dir>`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use ift::config::RunConfig;
use ift::resume::{resume_config, Resume};
use ift::run::train_from_config;
use ift::train::RunEnd;

use crate::observer::ProgressObserver;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Run configuration (TOML). Not needed with --resume.
    #[arg(long, required_unless_present = "resume")]
    config: Option<PathBuf>,
    /// Override a key: `--set train.lr=1e-5` (repeatable). On resume, only
    /// keys that cannot change the steps already taken (train.max_steps,
    /// eval and save cadence, data.eval, ...).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue the run in this directory (its newest checkpoint), writing
    /// into this directory whatever its config's train.output_dir says.
    #[arg(long, conflicts_with = "config")]
    resume: Option<PathBuf>,
    /// With --resume: continue even though the config, the data or the
    /// initial model changed since the run started (the changes are logged).
    #[arg(long, requires = "resume")]
    force: bool,
    /// Compute device: cpu, cuda (GPU 0) or cuda:N (`train.device`; CUDA
    /// needs a build with `--features cuda`). Same as `--set train.device=..`.
    #[arg(long, value_name = "DEVICE")]
    device: Option<ift::device::DeviceSpec>,
}

/// Whether the run finished or stopped on a signal with a checkpoint.
pub enum Ended {
    Finished,
    Interrupted,
}

pub fn run(mut args: TrainArgs) -> Result<Ended> {
    if let Some(d) = args.device {
        args.overrides.push(format!("train.device=\"{d}\""));
    }
    let (config, resume) = match &args.resume {
        Some(dir) => {
            let (config, resume) = resume_config(dir, &args.overrides, args.force)?;
            (config, Some(resume))
        }
        None => {
            let path = args
                .config
                .as_ref()
                .expect("clap requires --config without --resume");
            let text = std::fs::read_to_string(path)
                .map_err(|e| ift::Error::Io {
                    path: path.clone(),
                    source: e,
                })
                .context("reading the run configuration")?;
            let config = RunConfig::parse_file(&text, path, &args.overrides)?;
            (config, None)
        }
    };
    match run_training(&config, resume.as_ref())? {
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
            Ok(Ended::Finished)
        }
        RunEnd::Stopped { checkpoint } => {
            eprintln!(
                "stopped: checkpoint in {}; continue with `ift train --resume {}`",
                checkpoint.display(),
                config.train.output_dir.display()
            );
            Ok(Ended::Interrupted)
        }
    }
}

/// Everything between a resolved config and a finished (or stopped) run:
/// the library assembles the run; this adds signal handling and progress.
pub fn run_training(config: &RunConfig, resume: Option<&Resume>) -> Result<RunEnd> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // SIGINT (Ctrl-C) or SIGTERM (what schedulers send) asks the loop to write
    // a checkpoint and stop; a second one exits at once. That is safe at any
    // instant: every write is atomic, and the next start removes what a
    // killed write left behind.
    let _ = ctrlc::set_handler(move || {
        // Every long pass of the library stops at its next batch.
        ift::interrupt::request();
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(crate::EXIT_KILLED);
        }
        eprintln!(
            "\ninterrupted: writing a checkpoint before exiting (a second signal quits at once)"
        );
    });
    let mut observer = ProgressObserver::default();
    let outcome = train_from_config(config, resume, &stop, &mut observer)?;
    Ok(outcome.end)
}
