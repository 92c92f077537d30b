//! The training loop, top to bottom: schedule → micro-batches → gradient
//! accumulation → clipping → step → log → evaluate / checkpoint on cadence.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;

use super::checkpoint::{read_checkpoint, save_checkpoint, TrainerState};
use super::clip::clip_grad_norm;
use super::config::TrainConfig;
use super::examples::TrainData;
use super::metrics::{MetricsWriter, StepMetrics};
use super::objectives::{Reference, StepEnv};
use super::optim::Optimizer;
use super::order::BatchPlan;
use super::schedule::LrSchedule;
use super::step::{step_passes, StepContext};
use crate::error::{Error, Result};
use crate::eval::tasks::Benchmarks;
use crate::eval::{evaluate_loss, evaluate_objective, EvalLoss};
use crate::model::{LlamaForCausalLM, SaveOptions};
use crate::objective::Objective;
use crate::resume::RunContract;

/// Everything a run needs besides the model.
pub struct Run<'a> {
    pub train: &'a TrainData,
    /// Held-out examples of the same kind (empty: no evaluation).
    pub eval: &'a TrainData,
    pub config: &'a TrainConfig,
    pub objective: &'a Objective,
    /// Reference log-probabilities or model (preference objectives).
    pub reference: Reference<'a>,
    /// The fully resolved configuration, stored in every checkpoint.
    pub config_toml: &'a str,
    /// Model directory whose tokenizer files go into every checkpoint.
    pub companions: &'a Path,
    pub device: &'a Device,
    /// `train.eval_tasks`, scored on the evaluation cadence; `None`: none.
    pub benchmarks: Option<&'a Benchmarks<'a>>,
    /// What the trajectory depends on, recorded in every checkpoint
    /// (`crate::resume`); checked by the caller before resuming.
    pub contract: Option<&'a RunContract>,
}

/// Hooks for progress display; every method has a no-op default.
pub trait Observer {
    fn on_start(&mut self, _start_step: u64, _total_steps: u64) {}
    fn on_step(&mut self, _metrics: &StepMetrics) {}
    fn on_eval(&mut self, _step: u64, _eval: &EvalLoss) {}
    fn on_notice(&mut self, _message: &str) {}
    /// Progress of a preparatory pass (`what`: e.g. "reference log-probabilities").
    fn on_progress(&mut self, _what: &str, _done: usize, _total: usize) {}
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
    let (plan, total) = batch_plan(run.train, cfg);
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
    // A forced resume records the contract it accepted.
    (state.seed, state.contract) = (cfg.seed, run.contract.cloned());
    let mut metrics = MetricsWriter::open(out, resume.map(|_| state.step))?;
    let save = |optimizer: &Optimizer, state: &TrainerState, metrics: &MetricsWriter| {
        // The rows up to the checkpoint must survive whatever kills us next.
        metrics.sync()?;
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
    let env_at = |step: u64| StepEnv {
        objective: run.objective,
        reference: run.reference,
        ctx: StepContext {
            step,
            seed: cfg.seed,
        },
        device: run.device,
        engine: cfg.engine,
    };
    if cfg.eval_at_start && state.step == 0 {
        let env = env_at(0);
        if let Some(b) = run.benchmarks {
            metrics.write(&b.metrics_row(model, 0, run.device)?)?;
        }
        if !run.eval.is_empty() {
            if let Some(e) = evaluate(model, run, &env, &mut metrics, 0)? {
                obs.on_eval(0, &e);
            }
        }
    }
    while state.step < total {
        if stop.load(Ordering::SeqCst) {
            return Ok(RunEnd::Stopped {
                checkpoint: save(&optimizer, &state, &metrics)?,
            });
        }
        let started = Instant::now();
        let examples = run.train.select(&plan.batch(state.step));
        let lr = schedule.lr(state.step);
        let env = env_at(state.step);
        let micro = cfg.micro_batch_size;
        let mut passes = step_passes(model, examples.as_batch(), micro, &env, true)?;
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
        } else {
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
        }
        // A skipped step keeps the evaluation and checkpoint cadence, and the
        // final evaluation runs even when the last step was skipped.
        let last = state.step == total;
        let eval_due = last || (cfg.eval_every > 0 && state.step.is_multiple_of(cfg.eval_every));
        if let Some(b) = run.benchmarks.filter(|_| eval_due) {
            metrics.write(&b.metrics_row(model, state.step, run.device)?)?;
        }
        if !run.eval.is_empty() && eval_due {
            if let Some(e) = evaluate(model, run, &env, &mut metrics, state.step)? {
                obs.on_eval(state.step, &e);
                last_eval = Some(e);
            }
        }
        if cfg.save_every > 0 && state.step.is_multiple_of(cfg.save_every) && !last {
            save(&optimizer, &state, &metrics)?;
        }
    }
    let final_dir = out.join("final");
    // A mixed-precision run's model is saved in the dtype the base declared
    // (checkpoints keep the f32 master weights, which exact resume needs).
    let dtype = match cfg.dtype {
        super::TrainDtype::Bf16 => model.config.declared_dtype(),
        super::TrainDtype::F32 => candle_core::DType::F32,
    };
    let opts = SaveOptions {
        companions_from: Some(run.companions.to_path_buf()),
        dtype,
    };
    model.save_trained(&final_dir, &opts)?;
    Ok(RunEnd::Finished {
        final_dir,
        last_eval,
    })
}

/// The run's batch plan and its number of optimiser steps.
pub fn batch_plan(train: &TrainData, cfg: &TrainConfig) -> (BatchPlan, u64) {
    let plan = BatchPlan::new(train.lengths(), cfg.batch_size, cfg.seed);
    let total = match cfg.max_steps {
        0 => cfg.epochs * plan.steps_per_epoch(),
        n => n,
    };
    (plan, total)
}

/// Scores `run.eval` and writes its row: `eval_loss` / `eval_ppl` for
/// sequences; the objective's loss and reward figures for preference data.
fn evaluate(
    model: &LlamaForCausalLM,
    run: &Run<'_>,
    env: &StepEnv<'_>,
    metrics: &mut MetricsWriter,
    step: u64,
) -> Result<Option<EvalLoss>> {
    let micro = run.config.micro_batch_size;
    if let TrainData::Sequences(eval) = run.eval {
        let e = evaluate_loss(model, eval, micro, run.device)?;
        metrics.write(&serde_json::json!({"step": step, "eval_loss": e.eval_loss, "eval_ppl": e.eval_ppl, "eval_tokens": e.eval_tokens}))?;
        return Ok(Some(e));
    }
    let row = evaluate_objective(model, run.eval, micro, env)?;
    let loss = row.get("eval_loss").copied().unwrap_or(f64::NAN);
    let mut json = serde_json::json!({"step": step});
    for (k, v) in row {
        json[k] = serde_json::json!(v);
    }
    metrics.write(&json)?;
    Ok(Some(EvalLoss {
        eval_loss: loss,
        eval_ppl: loss.exp(),
        eval_tokens: 0,
    }))
}

fn train_err(e: super::optim::OptimError) -> Error {
    Error::Train(e.to_string())
}
