//! A whole run assembled from its configuration — the one entry point a Rust
//! user calls: output directory guard, the resolved config written, model,
//! data of the objective's kind, benchmarks, the reference pass, the loop.
//! The CLI adds only argument parsing, progress display and signal handling.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;

use crate::adapter::load_policy;
use crate::atomic::recover_locked_dir;
use crate::config::RunConfig;
use crate::data::{
    load_dataset, load_kto_dataset, load_preference_dataset, ChatTemplate, LoadSummary,
};
use crate::error::{Error, Result};
use crate::eval::tasks::{Benchmarks, EvalOptions};
use crate::lock::DirLock;
use crate::model::{
    check_vocab, write_file_atomically, LlamaForCausalLM, Pretrained, Quantize, Trainable,
};
use crate::objective::ExampleKind;
use crate::objective::{reference_source, ReferenceModel, ReferenceSource, RunSituation};
use crate::reference::{
    needed_sequences, prepare_reference_logps, weights_fingerprint, ReferenceLogps, ReferenceReport,
};
use crate::resume::{contract_changes, run_contract, Resume, RunContract};
use crate::tokenizer::HfTokenizer;
use crate::train::{
    batch_plan, latest_checkpoint, read_state, train, Observer, Reference, Run, RunEnd, TrainData,
    CONFIG_FILE,
};

/// How a run went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub end: RunEnd,
    /// What the reference pass did (DPO and KTO with a reference model).
    pub reference: Option<ReferenceReport>,
}

/// Trains as `config` says, in `config.train.output_dir`; `resume` names a
/// checkpoint of that run (see `crate::resume::resume_config`), whose
/// contract must hold unless forced. `stop` asks the loop to write a
/// checkpoint and return. It computes on `train.device`.
pub fn train_from_config(
    config: &RunConfig,
    resume: Option<&Resume>,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<RunOutcome> {
    let out = &config.train.output_dir;
    // Held until this function returns: no second process writes here.
    let _lock = prepare_output_dir(out, resume.is_some(), obs)?;
    // Written before anything slow, so an unwritable directory fails at once.
    let config_toml = config.to_toml();
    write_file_atomically(&out.join(CONFIG_FILE), config_toml.as_bytes())?;

    // A GGUF file is a valid base too (read in memory, `adapter::load_policy`).
    let gguf_base = crate::model::gguf::is_gguf(&config.model.path);
    if !config.model.path.is_dir() && !gguf_base && resume.is_none() {
        return Err(Error::Input {
            what: "model.path".into(),
            path: config.model.path.clone(),
            message: "no such directory (a Hugging Face model directory is expected)".into(),
        });
    }
    let contract = run_contract(config)?;
    if let Some(r) = resume {
        for n in &r.notices {
            obs.on_notice(n);
        }
        check_contract(r, &contract, config, obs)?;
    }
    let resume = resume.map(|r| r.checkpoint.as_path());
    let device = &config.train.device.open().map_err(|e| match e {
        Error::Usage(m) => Error::Usage(format!("`train.device`: {m}")),
        e => e,
    })?;
    crate::device::allow_tf32(config.train.tf32);
    let pretrained = load_policy(config, resume, device)?;
    check_finite(&pretrained.model, resume.unwrap_or(&config.model.path))?;
    let objective = &config.objective;
    let (train_set, eval_set) = load_data(config, &pretrained.tokenizer, obs)?;
    let options = config.data.load_options();
    let template = ChatTemplate::for_tokenizer(&pretrained.tokenizer, &options.template)?;
    let benchmarks = load_benchmarks(config, &pretrained, template.as_ref(), device)?;
    let reference = prepare_reference(
        config,
        &pretrained,
        resume,
        &train_set,
        &eval_set,
        device,
        obs,
    )?;
    // The tokenizer files come from the base model, never from a checkpoint
    // that pruning may delete later; a base directory without them (moved
    // away) falls back to the checkpoint being resumed.
    let companions = match config.model.path.join("tokenizer.json").is_file() {
        true => config.model.path.clone(),
        false => pretrained.dir.clone(),
    };
    let run = Run {
        train: &train_set,
        eval: &eval_set,
        config: &config.train,
        objective,
        reference: Reference {
            logps: reference.logps.as_ref(),
            model: reference.live.as_ref(),
        },
        config_toml: &config_toml,
        companions: &companions,
        device,
        benchmarks: benchmarks.as_ref(),
        contract: Some(&contract),
    };
    let policy = pretrained
        .model
        .with_compute_dtype(config.train.dtype.dtype());
    let end = train(&policy, &run, resume, stop, obs)?;
    Ok(RunOutcome {
        end,
        reference: reference.report,
    })
}

/// The training examples and the held-out ones (`data.eval`, or a share of
/// the training set with `data.eval_split`, or none).
fn load_data(
    config: &RunConfig,
    tok: &HfTokenizer,
    obs: &mut dyn Observer,
) -> Result<(TrainData, TrainData)> {
    let mut train_set = load_examples(config, &config.data.train, tok, obs)?;
    if train_set.is_empty() {
        return Err(Error::Input {
            what: "data.train".into(),
            path: config.data.train.clone(),
            message: "no training examples left after encoding".into(),
        });
    }
    let eval_set = match &config.data.eval {
        Some(p) => load_examples(config, p, tok, obs)?,
        None if config.data.eval_split > 0.0 => {
            let held = train_set.split_off_eval(config.data.eval_split, config.train.seed);
            obs.on_notice(&format!(
                "data.eval_split {}: {} examples held out for evaluation, {} train",
                config.data.eval_split,
                held.len(),
                train_set.len()
            ));
            held
        }
        None => empty_like(&train_set),
    };
    Ok((train_set, eval_set))
}

/// `train.eval_tasks`, loaded and checked to fit the model; `None` without any.
fn load_benchmarks<'t>(
    config: &RunConfig,
    pretrained: &'t Pretrained,
    template: Option<&'t ChatTemplate>,
    device: &Device,
) -> Result<Option<Benchmarks<'t>>> {
    if config.train.eval_tasks.is_empty() {
        return Ok(None);
    }
    let tok = &pretrained.tokenizer;
    let options = EvalOptions {
        limit: Some(config.train.eval_limit).filter(|&n| n > 0),
        batch_size: config.train.micro_batch_size,
        seed: config.train.seed,
        stop_token_ids: crate::eval::default_stop_ids(&config.model.path, tok)?,
        ..EvalOptions::default()
    };
    let benchmarks = Benchmarks::load(&config.train.eval_tasks, tok, template, options)?;
    benchmarks.check_scorable(&pretrained.model, device)?;
    Ok(Some(benchmarks))
}

/// What [`prepare_reference`] gives the run.
#[derive(Default)]
struct PreparedReference {
    /// Cached per-sequence log-probabilities (DPO, KTO).
    logps: Option<ReferenceLogps>,
    /// How the reference pass went (cache hits, time), for the caller.
    report: Option<ReferenceReport>,
    /// A model run on every micro-batch.
    live: Option<LlamaForCausalLM>,
}

/// The run's reference ([`reference_source`]): cached log-probabilities
/// (scored now where the cache lacks them), a model run on every
/// micro-batch, or neither. Reference log-probabilities are f32 whatever
/// `train.dtype` (scored once, cached, and shared across runs).
fn prepare_reference(
    config: &RunConfig,
    pretrained: &Pretrained,
    resume: Option<&Path>,
    train_set: &TrainData,
    eval_set: &TrainData,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<PreparedReference> {
    let situation = RunSituation {
        model_path: &config.model.path,
        has_adapter: pretrained.model.adapter().is_some(),
        resuming: resume.is_some(),
        cache_configured: config.train.reference_cache.is_some(),
    };
    let adapter_off = || pretrained.model.without_adapter().detached();
    Ok(match reference_source(&config.objective, situation) {
        ReferenceSource::None => PreparedReference::default(),
        ReferenceSource::Cached(model) => {
            let view = match model {
                ReferenceModel::AdapterOff => Some(adapter_off()),
                ReferenceModel::InitialWeights => Some(pretrained.model.detached()),
                ReferenceModel::Loaded(_) => None,
            };
            let (l, r) = reference_pass(
                config,
                pretrained,
                view.as_ref(),
                train_set,
                eval_set,
                device,
                obs,
            )?;
            PreparedReference {
                logps: Some(l),
                report: Some(r),
                live: None,
            }
        }
        ReferenceSource::AdapterOffLive => PreparedReference {
            live: Some(adapter_off()),
            ..Default::default()
        },
        ReferenceSource::LoadedLive(dir) => PreparedReference {
            live: Some(load_reference(&dir, &pretrained.tokenizer, device)?),
            ..Default::default()
        },
    })
}

/// Refuses weights holding NaN or ±∞: training from them cannot work, and
/// the first non-finite step would say so far less clearly. A tensor's sum
/// is finite exactly when all its elements are (f32 weights never sum past
/// 3e38).
fn check_finite(model: &LlamaForCausalLM, dir: &Path) -> Result<()> {
    for (name, t) in model.parameters().named() {
        let sum = t
            .sum_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_scalar::<f32>()?;
        if !sum.is_finite() {
            return Err(Error::NonFiniteTensor {
                dir: dir.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    Ok(())
}

/// The records of `path` encoded as the objective trains on them.
fn load_examples(
    config: &RunConfig,
    path: &Path,
    tok: &HfTokenizer,
    obs: &mut dyn Observer,
) -> Result<TrainData> {
    let options = config.data.load_options();
    let (data, summary): (TrainData, LoadSummary) = match config.objective.example_kind() {
        ExampleKind::Sequence => {
            let (d, s) = load_dataset(path, tok, &options)?;
            (TrainData::Sequences(d), s)
        }
        ExampleKind::Pair => {
            let (d, s) = load_preference_dataset(path, tok, &options)?;
            (TrainData::Pairs(d), s)
        }
        ExampleKind::Unpaired => {
            let (d, s) = load_kto_dataset(path, tok, &options)?;
            (TrainData::Unpaired(d), s)
        }
    };
    obs.on_notice(&summary.to_string());
    if summary.records == 0 {
        return Err(Error::Input {
            what: if path == config.data.train {
                "data.train"
            } else {
                "data.eval"
            }
            .into(),
            path: path.to_path_buf(),
            message: "the file holds no records".into(),
        });
    }
    Ok(data)
}

fn empty_like(data: &TrainData) -> TrainData {
    match data {
        TrainData::Sequences(_) => TrainData::Sequences(Vec::new()),
        TrainData::Pairs(_) => TrainData::Pairs(Vec::new()),
        TrainData::Unpaired(_) => TrainData::Unpaired(Vec::new()),
    }
}

/// The reference directory: `objective.reference`, or the initial policy.
fn reference_dir(config: &RunConfig, reference: Option<&Path>) -> PathBuf {
    reference
        .map(Path::to_path_buf)
        .unwrap_or_else(|| config.model.path.clone())
}

/// Loads a frozen reference model and checks it against the tokenizer.
fn load_reference(dir: &Path, tok: &HfTokenizer, device: &Device) -> Result<LlamaForCausalLM> {
    crate::model::check_same_tokenizer(tok, dir, "the reference model")?;
    let model = LlamaForCausalLM::from_pretrained(dir, &Trainable::None, device)?;
    check_vocab(tok, &model, dir)?;
    Ok(model)
}

/// Reference log-probabilities of every sequence the run can need, from the
/// cache or one graph-free pass. `view` is the reference when it is a view
/// of the loaded policy (the base with the adapter switched off, or a fresh
/// run's initial weights, the reference's until the first step); otherwise
/// the reference is loaded, only if needed.
fn reference_pass(
    config: &RunConfig,
    pretrained: &Pretrained,
    view: Option<&LlamaForCausalLM>,
    train_set: &TrainData,
    eval_set: &TrainData,
    device: &Device,
    obs: &mut dyn Observer,
) -> Result<(ReferenceLogps, ReferenceReport)> {
    let objective = &config.objective;
    let chosen = objective.reference().and_then(|r| r.reference.as_deref());
    let dir = reference_dir(config, chosen);
    let mut fingerprint = weights_fingerprint(&dir)?;
    if chosen.is_none() && config.model.quantize != Quantize::None {
        // A quantised base scores differently from the file's weights.
        fingerprint = format!("{fingerprint}-{:?}", config.model.quantize).to_lowercase();
    }
    let (plan, total) = batch_plan(train_set, &config.train);
    let micro = config.train.micro_batch_size;
    let needed = needed_sequences(train_set, &plan, total, eval_set, micro);
    let mut load = || match view {
        Some(m) => Ok(m.clone()),
        None => load_reference(&dir, &pretrained.tokenizer, device),
    };
    let cache_dir = config.train.reference_cache_dir();
    let mut progress =
        |done: usize, all: usize| obs.on_progress("reference log-probabilities", done, all);
    let (logps, report) = prepare_reference_logps(
        &needed,
        &cache_dir,
        &fingerprint,
        &mut load,
        micro,
        device,
        &mut progress,
    )?;
    if let Some(w) = &report.warning {
        obs.on_notice(&format!("warning: {w}"));
    }
    obs.on_notice(&format!(
        "reference log-probabilities: {} cached, {} computed ({})",
        report.cached,
        report.computed,
        report.cache_file.display()
    ));
    Ok((logps, report))
}

/// Refuses a resume whose trajectory would differ from the run's, listing
/// what changed; with `force`, says what was accepted.
fn check_contract(
    resume: &Resume,
    now: &RunContract,
    config: &RunConfig,
    obs: &mut dyn Observer,
) -> Result<()> {
    let Some(saved) = read_state(&resume.checkpoint)?.contract else {
        obs.on_notice("warning: the checkpoint records no fingerprints (an earlier version wrote it); resuming unchecked");
        return Ok(());
    };
    if now.model_sha256.is_empty() {
        obs.on_notice("warning: model.path is gone; the initial model is not checked");
    }
    let changes = contract_changes(&saved, now, config);
    if changes.is_empty() {
        return Ok(());
    }
    let list = changes.join("; ");
    if resume.force {
        obs.on_notice(&format!("warning: --force: resuming although {list}"));
        return Ok(());
    }
    Err(Error::Resume {
        dir: resume.checkpoint.clone(),
        message: format!(
            "the run would not continue the same trajectory: {list} (--force to resume anyway)"
        ),
    })
}

/// Creates and locks the output directory (a second process writing there
/// is refused, naming the holder) and cleans up after a killed process;
/// refuses to overwrite an earlier run's checkpoints unless resuming.
fn prepare_output_dir(out: &Path, resuming: bool, obs: &mut dyn Observer) -> Result<DirLock> {
    let lock = DirLock::acquire(out, "train.output_dir")?;
    for done in recover_locked_dir(&lock)? {
        obs.on_notice(&done);
    }
    if !resuming && (latest_checkpoint(out)?.is_some() || out.join("final").exists()) {
        return Err(Error::Usage(format!(
            "train.output_dir {} already holds a run; resume it with `ift train --resume {}` or choose another directory",
            out.display(),
            out.display()
        )));
    }
    Ok(lock)
}
