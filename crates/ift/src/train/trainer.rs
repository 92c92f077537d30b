//! The training loop, top to bottom: schedule → micro-batches → gradient
//! accumulation → clipping → step → log → evaluate / checkpoint on cadence.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Device;

use super::checkpoint::RunContract;
use super::checkpoint::{all_finite, read_checkpoint, save_checkpoint, TrainerState};
use super::clip::clip_grad_norm;
use super::config::TrainConfig;
use super::evaluate::evaluate_objective;
use super::metrics::{MetricsWriter, StepMetrics};
use super::optim::Optimizer;
use super::schedule::LrSchedule;
use super::step::{step_passes, StepContext};
use crate::data::BatchPlan;
use crate::data::TrainData;
use crate::error::{Error, Result};
use crate::eval::tasks::Benchmarks;
use crate::eval::{evaluate_loss, EvalLoss};
use crate::methods::{Reference, StepEnv};
use crate::model::{LlamaForCausalLM, SaveOptions};
use crate::objective::Objective;

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
///
/// A run that goes bad stops instead of writing bad weights: no checkpoint
/// is written during a streak of non-finite steps, and none, nor `final/`,
/// from weights that are not finite or whose loss on the run's first
/// micro-batch is not (`Loop::weights_fault`); so pruning never removes
/// the last good checkpoint, and the error names it. A stop (`stop`, or
/// `crate::interrupt`) is honoured between steps, inside a step and inside
/// an evaluation, with a checkpoint of the last completed step.
pub fn train(
    model: &LlamaForCausalLM,
    run: &Run<'_>,
    resume: Option<&Path>,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<RunEnd> {
    let cfg = run.config;
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
    let mut lp = Loop {
        model,
        run,
        plan,
        total,
        metrics: MetricsWriter::open(&cfg.output_dir, resume.map(|_| state.step))?,
        last_good: resume.map(Path::to_path_buf),
        saved_at: resume.map(|_| state.step),
        last_eval: None,
    };
    obs.on_start(state.step, total);
    let stopping = || stop.load(Ordering::SeqCst) || crate::interrupt::requested();
    loop {
        // The evaluations due here: the opening one, each cadence's, or one
        // that a signal interrupted before the checkpoint being resumed.
        if !state.evaluated {
            if lp.eval_due(state.step) {
                match lp.evaluate(state.step, obs) {
                    Err(Error::Interrupted(_)) => return lp.stop_here(&optimizer, &state, obs),
                    r => r?,
                }
            }
            state.evaluated = true;
        }
        if lp.save_due(state.step) {
            match lp.save(&optimizer, &state, obs) {
                Err(Error::Interrupted(_)) => return lp.stop_here(&optimizer, &state, obs),
                r => r?,
            };
        }
        if state.step >= total {
            break;
        }
        if stopping() {
            return lp.stop_here(&optimizer, &state, obs);
        }
        match lp.step(&mut optimizer, &schedule, &mut state, obs) {
            Err(Error::Interrupted(_)) => return lp.stop_here(&optimizer, &state, obs),
            r => r?,
        }
        if state.bad_steps >= cfg.max_bad_steps {
            let why = format!(
                "{} non-finite steps in a row (last: step {}); stopping",
                state.bad_steps, state.step
            );
            return Err(lp.gone_bad(&why));
        }
    }
    lp.finish(&state)
}

/// The loop's state besides the optimiser and `TrainerState`.
struct Loop<'r, 'a> {
    model: &'r LlamaForCausalLM,
    run: &'r Run<'a>,
    plan: BatchPlan,
    total: u64,
    metrics: MetricsWriter,
    /// The newest checkpoint written (or resumed from) from sound weights.
    last_good: Option<PathBuf>,
    /// The step of the newest checkpoint, so that none is written twice.
    saved_at: Option<u64>,
    last_eval: Option<EvalLoss>,
}

impl Loop<'_, '_> {
    fn env_at(&self, step: u64) -> StepEnv<'_> {
        StepEnv {
            objective: self.run.objective,
            reference: self.run.reference,
            ctx: StepContext {
                step,
                seed: self.run.config.seed,
            },
            device: self.run.device,
            engine: super::Engine::Explicit,
        }
    }

    /// Whether evaluations are due at `step` (the opening one at 0).
    fn eval_due(&self, step: u64) -> bool {
        let cfg = self.run.config;
        let any = self.run.benchmarks.is_some() || !self.run.eval.is_empty();
        let due = match step {
            0 => cfg.eval_at_start,
            s => s == self.total || (cfg.eval_every > 0 && s.is_multiple_of(cfg.eval_every)),
        };
        any && due
    }

    /// Whether a checkpoint is due at `step` and not yet written.
    fn save_due(&self, step: u64) -> bool {
        let every = self.run.config.save_every;
        let due = step > 0 && step < self.total && every > 0 && step.is_multiple_of(every);
        due && self.saved_at != Some(step)
    }

    /// One optimiser step (or a skipped one, counted in `bad_steps`).
    fn step(
        &mut self,
        optimizer: &mut Optimizer,
        schedule: &LrSchedule,
        state: &mut TrainerState,
        obs: &mut dyn Observer,
    ) -> Result<()> {
        let cfg = self.run.config;
        let started = Instant::now();
        let examples = self.run.train.select(&self.plan.batch(state.step));
        let lr = schedule.lr(state.step);
        let env = self.env_at(state.step);
        let micro = cfg.micro_batch_size;
        let mut passes = step_passes(self.model, examples.as_batch(), micro, &env, true)?;
        let clip = clip_grad_norm(&mut passes.grads, optimizer.vars(), cfg.max_grad_norm)
            .map_err(train_err)?;
        state.step += 1;
        state.evaluated = false;
        // The data position: where the next step's batch is.
        (state.epoch, state.batch_in_epoch) = self.plan.position(state.step);
        if !passes.loss.is_finite() || !clip.is_finite() {
            state.bad_steps += 1;
            obs.on_notice(&format!(
                "step {}: non-finite loss ({}) or gradient norm ({}); step skipped",
                state.step, passes.loss, clip.norm
            ));
            return Ok(());
        }
        state.bad_steps = 0;
        optimizer.step(&passes.grads, lr).map_err(train_err)?;
        let seconds = started.elapsed().as_secs_f64();
        state.tokens_seen += passes.tokens as u64;
        state.elapsed_s += seconds;
        let row = StepMetrics {
            step: state.step,
            epoch: self.plan.position(state.step - 1).0,
            loss: passes.loss,
            grad_norm: clip.norm as f64,
            lr,
            tokens: passes.tokens,
            trained_tokens: passes.trained_tokens,
            tokens_per_s: passes.tokens as f64 / seconds.max(1e-9),
            elapsed_s: state.elapsed_s,
            extra: std::mem::take(&mut passes.extra),
        };
        self.metrics.write(&row)?;
        obs.on_step(&row);
        Ok(())
    }

    /// The evaluations due at `step`, their rows written together once all
    /// are done (an interrupted evaluation writes none, and is redone).
    fn evaluate(&mut self, step: u64, obs: &mut dyn Observer) -> Result<()> {
        let mut rows = Vec::new();
        if let Some(b) = self.run.benchmarks {
            rows.push(b.metrics_row(self.model, step, self.run.device)?);
        }
        let mut eval = None;
        if !self.run.eval.is_empty() {
            let (row, e) = evaluate(self.model, self.run, &self.env_at(step), step)?;
            rows.push(row);
            eval = Some(e);
        }
        for row in &rows {
            self.metrics.write(row)?;
        }
        if let Some(e) = eval {
            obs.on_eval(step, &e);
            if step > 0 {
                self.last_eval = Some(e);
            }
        }
        Ok(())
    }

    /// Writes `checkpoint-<step>` unless the run is in a non-finite streak;
    /// refuses (naming the last good checkpoint) when the weights are unsound.
    fn save(
        &mut self,
        optimizer: &Optimizer,
        state: &TrainerState,
        obs: &mut dyn Observer,
    ) -> Result<Option<PathBuf>> {
        if state.bad_steps > 0 {
            obs.on_notice(&format!(
                "step {}: no checkpoint during a streak of {} non-finite steps",
                state.step, state.bad_steps
            ));
            return Ok(None);
        }
        if let Some(why) = self.weights_fault()? {
            return Err(self.gone_bad(&format!("{why} at step {}", state.step)));
        }
        self.write_checkpoint(optimizer, state).map(Some)
    }

    fn write_checkpoint(&mut self, optimizer: &Optimizer, state: &TrainerState) -> Result<PathBuf> {
        let cfg = self.run.config;
        // The rows up to the checkpoint must survive whatever kills us next.
        self.metrics.sync()?;
        let dir = save_checkpoint(
            &cfg.output_dir,
            self.model,
            self.run.companions,
            optimizer,
            state,
            self.run.config_toml,
            cfg.keep_last,
        )?;
        (self.last_good, self.saved_at) = (Some(dir.clone()), Some(state.step));
        Ok(dir)
    }

    /// A stop asked for: a checkpoint of the last completed step (the one
    /// already written if there is one), unless the run is in a non-finite
    /// streak, when the last good checkpoint is where a resume starts.
    fn stop_here(
        &mut self,
        optimizer: &Optimizer,
        state: &TrainerState,
        obs: &mut dyn Observer,
    ) -> Result<RunEnd> {
        let out = &self.run.config.output_dir;
        let sound = state.bad_steps == 0 && self.parameters_finite()?;
        match (sound, self.last_good.clone()) {
            (true, _) => Ok(RunEnd::Stopped {
                checkpoint: self.write_checkpoint(optimizer, state)?,
            }),
            (false, Some(checkpoint)) => {
                obs.on_notice(&format!(
                    "stopping during a streak of non-finite steps: no checkpoint written; {} is the last good one",
                    checkpoint.display()
                ));
                Ok(RunEnd::Stopped { checkpoint })
            }
            (false, None) => Err(Error::Interrupted(format!(
                "interrupted during a streak of non-finite steps, before any checkpoint was written; nothing to resume in {}",
                out.display()
            ))),
        }
    }

    /// Why the weights cannot be trusted, if they cannot: a parameter not
    /// finite, or a non-finite loss on the run's first micro-batch (weights
    /// can blow up while staying finite).
    fn weights_fault(&self) -> Result<Option<String>> {
        if !self.parameters_finite()? {
            return Ok(Some("the weights hold NaN or infinite values".into()));
        }
        let micro = self.run.config.micro_batch_size;
        let mut first = self.plan.batch(0);
        first.truncate(micro);
        let examples = self.run.train.select(&first);
        let env = self.env_at(0);
        let loss = step_passes(self.model, examples.as_batch(), micro, &env, false)?.loss;
        Ok((!loss.is_finite()).then(|| {
            format!("the weights give a non-finite loss ({loss}) on the run's first micro-batch")
        }))
    }

    fn parameters_finite(&self) -> Result<bool> {
        for (_, t) in self.model.parameters().named() {
            if !all_finite(t)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The error of a run gone bad, naming the last good checkpoint after
    /// checking that it really is intact.
    /// After the last step: fails a run that ended in a non-finite streak or
    /// with unsound weights (naming the last good checkpoint), else writes
    /// `final/`.
    fn finish(self, state: &TrainerState) -> Result<RunEnd> {
        if state.bad_steps > 0 {
            let why = format!(
                "the run ended during a streak of {} non-finite steps (last: step {}); final/ not written",
                state.bad_steps, state.step
            );
            return Err(self.gone_bad(&why));
        }
        if let Some(why) = self.weights_fault()? {
            return Err(self.gone_bad(&format!(
                "{why} after step {}; final/ not written",
                state.step
            )));
        }
        let cfg = self.run.config;
        let final_dir = cfg.output_dir.join("final");
        // A mixed-precision run's model is saved in the dtype the base declared
        // (checkpoints keep the f32 master weights, which exact resume needs).
        let dtype = match cfg.dtype {
            super::TrainDtype::Bf16 => self.model.config.declared_dtype(),
            super::TrainDtype::F32 => candle_core::DType::F32,
        };
        let opts = SaveOptions {
            companions_from: Some(self.run.companions.to_path_buf()),
            dtype,
        };
        self.model.save_trained(&final_dir, &opts)?;
        Ok(RunEnd::Finished {
            final_dir,
            last_eval: self.last_eval,
        })
    }

    fn gone_bad(&self, why: &str) -> Error {
        let advice = "try a lower train.lr (or a smaller train.max_grad_norm)";
        let last = match &self.last_good {
            Some(dir) => match read_checkpoint(dir) {
                Ok(_) => format!(
                    "the last good checkpoint, {}, is intact (verified); resume it with `ift train --resume {} --force --set ...`",
                    dir.display(),
                    self.run.config.output_dir.display()
                ),
                Err(e) => format!("the last good checkpoint, {}, is damaged: {e}", dir.display()),
            },
            None => "no checkpoint was written".into(),
        };
        Error::Train(format!("{why}. {}; {advice}", capitalised(&last)))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
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

/// Scores `run.eval`: its `metrics.jsonl` row (`eval_loss` / `eval_ppl`
/// for sequences; the objective's loss and reward figures for preference
/// data) and the loss.
fn evaluate(
    model: &LlamaForCausalLM,
    run: &Run<'_>,
    env: &StepEnv<'_>,
    step: u64,
) -> Result<(serde_json::Value, EvalLoss)> {
    let micro = run.config.micro_batch_size;
    if let TrainData::Sequences(eval) = run.eval {
        let e = evaluate_loss(model, eval, micro, run.device)?;
        let row = serde_json::json!({"step": step, "eval_loss": e.eval_loss, "eval_ppl": e.eval_ppl, "eval_tokens": e.eval_tokens});
        return Ok((row, e));
    }
    let o = evaluate_objective(model, run.eval, micro, env)?;
    let mut json = serde_json::json!({"step": step});
    for (k, v) in o.figures {
        json[k] = serde_json::json!(v);
    }
    let e = EvalLoss {
        eval_loss: o.loss,
        eval_ppl: o.loss.exp(),
        eval_tokens: 0,
    };
    Ok((json, e))
}

fn train_err(e: super::optim::OptimError) -> Error {
    Error::Train(e.to_string())
}
