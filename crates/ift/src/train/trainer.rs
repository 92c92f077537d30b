//! The training loop, top to bottom: schedule → micro-batches → gradient
//! accumulation → clipping → step → log → evaluate / checkpoint on cadence.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;

use super::checkpoint::{read_checkpoint, save_checkpoint, TrainerState};
use super::clip::clip_grad_norm;
use super::config::{ObjectiveConfig, TrainConfig};
use super::metrics::{MetricsWriter, StepMetrics};
use super::optim::Optimizer;
use super::order::BatchPlan;
use super::schedule::LrSchedule;
use super::step::{forward_backward, StepContext};
use crate::data::EncodedExample;
use crate::error::{Error, Result};
use crate::eval::tasks::Benchmarks;
use crate::eval::{evaluate_loss, EvalLoss};
use crate::model::{LlamaForCausalLM, SaveOptions};

/// Everything a run needs besides the model.
pub struct Run<'a> {
    pub train: &'a [EncodedExample],
    pub eval: &'a [EncodedExample],
    pub config: &'a TrainConfig,
    pub objective: &'a ObjectiveConfig,
    /// The fully resolved configuration, stored in every checkpoint.
    pub config_toml: &'a str,
    /// Model directory whose tokenizer files go into every checkpoint.
    pub companions: &'a Path,
    pub device: &'a Device,
    /// `train.eval_tasks`, scored on the evaluation cadence; `None`: none.
    pub benchmarks: Option<&'a Benchmarks<'a>>,
}

/// Hooks for progress display; every method has a no-op default.
pub trait Observer {
    fn on_start(&mut self, _start_step: u64, _total_steps: u64) {}
    fn on_step(&mut self, _metrics: &StepMetrics) {}
    fn on_eval(&mut self, _step: u64, _eval: &EvalLoss) {}
    fn on_notice(&mut self, _message: &str) {}
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// All steps done; the model is in `final/`.
    Finished {
        final_dir: PathBuf,
        last_eval: Option<EvalLoss>,
    },
    /// Stopped on request (Ctrl-C) after writing this checkpoint.
    Stopped { checkpoint: PathBuf },
}

/// Trains `model` (whose trainable parameters are `Var`s) in `config.output_dir`,
/// resuming from `resume` (a checkpoint directory) when given.
pub fn train(
    model: &LlamaForCausalLM,
    run: &Run<'_>,
    resume: Option<&Path>,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<RunEnd> {
    let cfg = run.config;
    let out = &cfg.output_dir;
    let plan = BatchPlan::new(
        run.train.iter().map(|e| e.input_ids.len()).collect(),
        cfg.batch_size,
        cfg.seed,
    );
    let total = if cfg.max_steps > 0 {
        cfg.max_steps
    } else {
        cfg.epochs * plan.steps_per_epoch()
    };
    let schedule = LrSchedule::new(&cfg.schedule_config(), cfg.lr, total).map_err(train_err)?;
    let mut optimizer = Optimizer::new(cfg.optimizer_config(), model.parameters().vars().to_vec())
        .map_err(train_err)?;
    let mut state = TrainerState {
        seed: cfg.seed,
        ..TrainerState::default()
    };
    if let Some(dir) = resume {
        let (saved, tensors) = read_checkpoint(dir)?;
        optimizer.load_state(&tensors).map_err(train_err)?;
        if saved.step > total {
            let msg = format!("{}: the checkpoint is at step {} but the run has only {total} steps (train.max_steps / train.epochs)", dir.display(), saved.step);
            return Err(Error::Train(msg));
        }
        state = saved;
    }
    let mut metrics = MetricsWriter::open(out, resume.map(|_| state.step))?;
    let save = |optimizer: &Optimizer, state: &TrainerState| {
        save_checkpoint(
            out,
            model,
            run.companions,
            optimizer,
            state,
            run.config_toml,
            cfg.keep_last,
        )
    };
    let (mut bad_steps, mut last_eval) = (0u64, None);
    obs.on_start(state.step, total);
    while state.step < total {
        if stop.load(Ordering::SeqCst) {
            return Ok(RunEnd::Stopped {
                checkpoint: save(&optimizer, &state)?,
            });
        }
        let started = Instant::now();
        let batch: Vec<&EncodedExample> = plan
            .batch(state.step)
            .into_iter()
            .map(|i| &run.train[i])
            .collect();
        let lr = schedule.lr(state.step);
        let ctx = StepContext {
            step: state.step,
            seed: cfg.seed,
        };
        let micro = cfg.micro_batch_size;
        let mut passes = forward_backward(model, &batch, micro, run.objective, ctx, run.device)?;
        let clip = clip_grad_norm(&mut passes.grads, optimizer.vars(), cfg.max_grad_norm)
            .map_err(train_err)?;
        state.step += 1;
        let per_epoch = plan.steps_per_epoch().max(1);
        (state.epoch, state.batch_in_epoch) = (state.step / per_epoch, state.step % per_epoch);
        if !passes.loss.is_finite() || !clip.is_finite() {
            bad_steps += 1;
            obs.on_notice(&format!(
                "step {}: non-finite loss ({}) or gradient norm ({}); step skipped",
                state.step, passes.loss, clip.norm
            ));
            if bad_steps >= cfg.max_bad_steps {
                return Err(Error::Train(format!("{bad_steps} non-finite steps in a row (last: step {}); stopping. The last good checkpoint in {} is intact; try a lower train.lr", state.step, out.display())));
            }
            continue;
        }
        bad_steps = 0;
        optimizer.step(&passes.grads, lr).map_err(train_err)?;
        let seconds = started.elapsed().as_secs_f64();
        state.tokens_seen += passes.tokens as u64;
        state.elapsed_s += seconds;
        let row = StepMetrics {
            step: state.step,
            epoch: (state.step - 1) / plan.steps_per_epoch().max(1),
            loss: passes.loss,
            grad_norm: clip.norm as f64,
            lr,
            tokens: passes.tokens,
            trained_tokens: passes.trained_tokens,
            tokens_per_s: passes.tokens as f64 / seconds.max(1e-9),
            elapsed_s: state.elapsed_s,
            extra: std::mem::take(&mut passes.extra),
        };
        metrics.write(&row)?;
        obs.on_step(&row);
        let last = state.step == total;
        let eval_due = last || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every));
        if let Some(b) = run.benchmarks.filter(|_| eval_due) {
            metrics.write(&b.metrics_row(model, state.step, run.device)?)?;
        }
        if !run.eval.is_empty() && eval_due {
            let e = evaluate_loss(model, run.eval, cfg.micro_batch_size, run.device)?;
            metrics.write(&serde_json::json!({"step": state.step, "eval_loss": e.eval_loss, "eval_ppl": e.eval_ppl, "eval_tokens": e.eval_tokens}))?;
            obs.on_eval(state.step, &e);
            last_eval = Some(e);
        }
        if cfg.save_every > 0 && state.step.is_multiple_of(cfg.save_every) && !last {
            save(&optimizer, &state)?;
        }
    }
    let final_dir = out.join("final");
    let opts = SaveOptions {
        companions_from: Some(run.companions.to_path_buf()),
        ..SaveOptions::default()
    };
    model.save_pretrained(&final_dir, &opts)?;
    Ok(RunEnd::Finished {
        final_dir,
        last_eval,
    })
}

fn train_err(e: super::optim::OptimError) -> Error {
    Error::Train(e.to_string())
}
