//! Benchmarks during training (`train.eval_tasks`): the tasks of `ift eval`
//! run on the evaluation cadence, flattened into one `metrics.jsonl` row.

use candle_core::Device;
use serde_json::{Map, Value};

use super::records::{load_task, Task};
use super::run::{EvalOptions, Evaluator};
use crate::data::ChatTemplate;
use crate::model::LlamaForCausalLM;
use crate::tokenizer::HfTokenizer;
use crate::Result;

/// Loaded tasks plus what scoring them needs besides the model being trained.
pub struct Benchmarks<'a> {
    pub tasks: Vec<Task>,
    pub tokenizer: &'a HfTokenizer,
    pub template: Option<&'a ChatTemplate>,
    pub options: EvalOptions,
}

impl<'a> Benchmarks<'a> {
    /// Loads every `FILE[:kind]` up front, so a bad file fails before training starts.
    pub fn load(
        specs: &[String],
        tokenizer: &'a HfTokenizer,
        template: Option<&'a ChatTemplate>,
        options: EvalOptions,
    ) -> Result<Self> {
        let tasks = specs.iter().map(|s| load_task(s)).collect::<Result<_>>()?;
        Ok(Self {
            tasks,
            tokenizer,
            template,
            options,
        })
    }

    /// Fails, naming the task file, when a task has no record to score on
    /// `model` (e.g. every answer beyond its window): found before training,
    /// not at the first evaluation, which may come after the last step.
    pub fn check_scorable(&self, model: &LlamaForCausalLM, device: &Device) -> Result<()> {
        let ev = Evaluator {
            model,
            tokenizer: self.tokenizer,
            template: self.template,
            device,
        };
        for task in &self.tasks {
            ev.check_scorable(task, &self.options)?;
        }
        Ok(())
    }

    /// `{"step", "eval_<task>_<metric>": value, ...}` for the model as it is now.
    pub fn metrics_row(
        &self,
        model: &LlamaForCausalLM,
        step: u64,
        device: &Device,
    ) -> Result<Value> {
        let ev = Evaluator {
            model,
            tokenizer: self.tokenizer,
            template: self.template,
            device,
        };
        let mut row = Map::new();
        row.insert("step".into(), step.into());
        for task in &self.tasks {
            let r = ev.run(task, &self.options, |_, _| {})?;
            for (metric, v) in r.metrics {
                row.insert(format!("eval_{}_{metric}", r.task), v.into());
            }
        }
        Ok(Value::Object(row))
    }
}
