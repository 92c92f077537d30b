//! Runs one task on a model and reduces it to named figures.

use std::collections::BTreeMap;

use candle_core::Device;
use serde::Serialize;

use super::corpus;
use super::generation;
use super::loglik::Request;
use super::prompt::{self, Prompting};
use super::records::{Task, TaskItems, TaskKind};
use super::rules::{argmax_first, char_normalised};
use super::shared_context::grouped_loglikelihoods;
use crate::data::ChatTemplate;
use crate::model::LlamaForCausalLM;
use crate::tokenizer::HfTokenizer;
use crate::Result;

/// Options shared by every task of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Few-shot examples drawn (with `seed`) from the task's own file and not scored.
    pub fewshot: usize,
    /// Score at most this many records (after the few-shot pool is set aside).
    pub limit: Option<usize>,
    /// Wrap each prompt as a user turn of the chat template.
    pub chat: bool,
    pub batch_size: usize,
    pub seed: u64,
    /// Generation tasks: the longest answer in tokens (256 by default, room
    /// for a worked answer, as lm-eval's GSM8K).
    pub max_new_tokens: usize,
    /// Generation tasks: the answer ends at the first of these; `None`: the
    /// default of the mode (`generation::stop_strings`).
    pub stop: Option<Vec<String>>,
    /// Generation tasks: ids that end an answer besides the tokenizer's EOS
    /// (e.g. `generation_config.json`'s, see `eval::default_stop_ids`).
    pub stop_token_ids: Vec<u32>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            fewshot: 0,
            limit: None,
            chat: false,
            batch_size: 8,
            seed: 1234,
            max_new_tokens: 256,
            stop: None,
            stop_token_ids: Vec::new(),
        }
    }
}

/// One task's figures, as written to `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub kind: TaskKind,
    /// Records scored.
    pub n: usize,
    pub metrics: BTreeMap<String, f64>,
    /// Generation tasks: each record's answer, as generated and as scored,
    /// so that a figure can be checked by reading it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<GenerationSample>,
}

/// One generation record's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationSample {
    /// Everything generated (special tokens dropped).
    pub generated: String,
    /// The part scored: the text before the first stop string, trimmed.
    pub answer: String,
    /// The reference answer.
    pub target: String,
    pub correct: bool,
}

/// Everything a task needs from the model side.
pub struct Evaluator<'a> {
    pub model: &'a LlamaForCausalLM,
    pub tokenizer: &'a HfTokenizer,
    /// Required when `options.chat`; also used by perplexity tasks on chat records.
    pub template: Option<&'a ChatTemplate>,
    pub device: &'a Device,
}

impl Evaluator<'_> {
    /// Runs `task`; `progress(done, total)` is called as records are scored.
    pub fn run(
        &self,
        task: &Task,
        o: &EvalOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<TaskResult> {
        let chat = if o.chat { self.template } else { None };
        if o.chat && chat.is_none() {
            return Err(crate::Error::eval(
                &task.path,
                0,
                "--chat needs a chat template and the model has none",
            ));
        }
        // A Jinja template writes its own BOS; raw text gets the tokenizer's.
        let specials = chat.is_none_or(ChatTemplate::adds_special_tokens);
        let mut metrics = BTreeMap::new();
        let mut samples = Vec::new();
        let n = match &task.items {
            TaskItems::MultipleChoice(recs) => {
                let (shots, scored) = split(recs, o, prompt::choice_shot);
                let p = Prompting { chat, shots };
                let groups = scored
                    .iter()
                    .map(|r| prompt::choice_requests(&p, r))
                    .collect::<Result<Vec<_>>>()?;
                let ll = self.grouped(&groups, specials, o.batch_size, &mut progress)?;
                let (mut acc, mut norm) = (0.0, 0.0);
                for (r, l) in scored.iter().zip(&ll) {
                    acc += f64::from(argmax_first(l) == Some(r.gold));
                    norm +=
                        f64::from(argmax_first(&char_normalised(l, &r.choices)) == Some(r.gold));
                }
                metrics.insert("acc".into(), acc / scored.len().max(1) as f64);
                metrics.insert("acc_norm".into(), norm / scored.len().max(1) as f64);
                scored.len()
            }
            TaskItems::Schema(recs) => {
                let (shots, scored) = split(recs, o, prompt::schema_shot);
                let p = Prompting { chat, shots };
                let groups = scored
                    .iter()
                    .map(|r| prompt::schema_requests(&p, r))
                    .collect::<Result<Vec<_>>>()?;
                let ll = self.grouped(&groups, specials, o.batch_size, &mut progress)?;
                let acc: f64 = scored
                    .iter()
                    .zip(&ll)
                    .map(|(r, l)| f64::from(argmax_first(l) == Some(r.gold)))
                    .sum();
                metrics.insert("acc".into(), acc / scored.len().max(1) as f64);
                scored.len()
            }
            TaskItems::Generation(recs) => {
                let (shots, scored) = split(recs, o, prompt::generation_shot);
                let p = Prompting { chat, shots };
                samples = generation::answers(self, &p, &scored, specials, o, &mut progress)?;
                let hits = samples.iter().filter(|s| s.correct).count();
                let rate = hits as f64 / scored.len().max(1) as f64;
                metrics.insert("exact_match".into(), rate);
                scored.len()
            }
            TaskItems::Perplexity => corpus::perplexity(self, &task.path, o, &mut metrics)?,
            TaskItems::Preference => {
                corpus::preference(self, &task.path, o, &mut metrics, &mut progress)?
            }
        };
        // A figure over zero records would read as a score of 0: refuse it.
        if n == 0 {
            return Err(nothing_scored(task, o));
        }
        Ok(TaskResult {
            task: task.name.clone(),
            kind: task.kind,
            n,
            metrics,
            samples,
        })
    }

    /// How many records `run` would score, found without running the model
    /// (records are encoded, not scored); an error naming the task file when
    /// none, as `run`'s. Training checks its `train.eval_tasks` with it before
    /// the first step.
    pub fn check_scorable(&self, task: &Task, o: &EvalOptions) -> Result<usize> {
        fn scored<T>(recs: &[T], o: &EvalOptions) -> usize {
            split(recs, o, |_| String::new()).1.len()
        }
        let n = match &task.items {
            TaskItems::MultipleChoice(recs) => scored(recs, o),
            TaskItems::Schema(recs) => scored(recs, o),
            TaskItems::Generation(recs) => scored(recs, o),
            TaskItems::Perplexity => corpus::perplexity_examples(self, &task.path, o)?.len(),
            TaskItems::Preference => corpus::preference_examples(self, &task.path, o)?.0.len(),
        };
        match n {
            0 => Err(nothing_scored(task, o)),
            n => Ok(n),
        }
    }

    /// Log-likelihoods of each group's requests (one question's choices),
    /// the group's shared context computed once.
    pub fn grouped(
        &self,
        groups: &[Vec<Request>],
        specials: bool,
        batch_rows: usize,
        progress: &mut impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<f64>>> {
        let total = groups.iter().map(Vec::len).sum();
        let scores = grouped_loglikelihoods(
            self.model,
            self.tokenizer,
            groups,
            specials,
            batch_rows,
            self.device,
            |d| progress(d, total),
        )?;
        Ok(scores
            .into_iter()
            .map(|g| g.into_iter().map(|s| s.logprob_sum).collect())
            .collect())
    }
}

/// The error of a task that scored no record, naming its file and why.
fn nothing_scored(task: &Task, o: &EvalOptions) -> crate::Error {
    let records = match &task.items {
        TaskItems::MultipleChoice(r) => Some(r.len()),
        TaskItems::Schema(r) => Some(r.len()),
        TaskItems::Generation(r) => Some(r.len()),
        TaskItems::Perplexity | TaskItems::Preference => None,
    };
    let why = match (records, o.limit) {
        (_, Some(0)) => "the limit is 0".to_string(),
        (Some(n), _) if o.fewshot > 0 => format!(
            "its {n} record(s) all went to the {} few-shot example(s) (--fewshot)",
            o.fewshot
        ),
        (Some(_), _) => "it holds no records".to_string(),
        (None, _) => {
            "no record has an answer left to score (each cut away by the model's window, or not of this kind)"
                .to_string()
        }
    };
    let message =
        format!("no records were scored: {why}; a figure over zero records is not reported");
    crate::Error::eval(&task.path, 0, message)
}

/// The few-shot prefix and the records to score (the pool excluded, then `limit`).
fn split<'r, T>(
    recs: &'r [T],
    o: &EvalOptions,
    shot: impl Fn(&T) -> String,
) -> (String, Vec<&'r T>) {
    let pool = prompt::fewshot_indices(recs.len(), o.fewshot, o.seed);
    let shots = pool.iter().map(|&i| shot(&recs[i])).collect();
    let scored = (0..recs.len())
        .filter(|i| !pool.contains(i))
        .map(|i| &recs[i])
        .take(o.limit.unwrap_or(usize::MAX))
        .collect();
    (shots, scored)
}
