//! Benchmarks: multiple choice, schema, generation and perplexity tasks read
//! from JSONL, scored the way lm-eval scores them.

mod benchmarks;
mod corpus;
mod generation;
mod loglik;
mod prompt;
mod records;
mod rules;
mod run;
mod shared_context;

pub use benchmarks::Benchmarks;
pub use generation::{cut_at_stop, stop_strings, DEFAULT_STOP};
pub use loglik::{encode_request, loglikelihoods, Request};
pub use prompt::{choice_requests, fewshot_indices, schema_requests, Prompting};
pub use records::{
    load_task, parse_task_spec, ChoiceRecord, GenerationRecord, SchemaRecord, Task, TaskItems,
    TaskKind,
};
pub use rules::{argmax_first, char_normalised, exact_match, extract_last_number, normalize_text};
pub use run::{EvalOptions, Evaluator, GenerationSample, TaskResult};
pub use shared_context::{grouped_loglikelihoods, score_groups, shared_prefix};
