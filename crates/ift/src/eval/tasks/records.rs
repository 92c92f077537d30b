//! Task files: `FILE[:kind]` specs and the typed records of each kind, in the
//! formats of `shared/data/eval/` (llm-foundry's local eval sets).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a task is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// `{"query", "choices", "gold"}`: log-likelihood of each choice after the query.
    MultipleChoice,
    /// `{"context_options", "continuation", "gold"}`: the shared continuation after each context.
    Schema,
    /// `{"context", "answer"}`: greedy generation, exact match.
    Generation,
    /// Chat, prompt-completion or text records: mean loss on the trained tokens.
    Perplexity,
    /// Preference records (chosen / rejected): which answer the model prefers.
    Preference,
}

impl TaskKind {
    fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.replace('-', "_"))).ok()
    }
}

/// `{"query", "choices", "gold"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChoiceRecord {
    pub query: String,
    pub choices: Vec<String>,
    pub gold: usize,
}

/// `{"context_options", "continuation", "gold"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaRecord {
    pub context_options: Vec<String>,
    pub continuation: String,
    pub gold: usize,
}

/// `{"context", "answer"}` with an optional worked solution.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationRecord {
    pub context: String,
    pub answer: String,
    #[serde(default)]
    pub chain_of_thought: Option<String>,
}

/// A task's records, typed by kind (perplexity reads its file with `data::load_records`).
#[derive(Debug, Clone)]
pub enum TaskItems {
    MultipleChoice(Vec<ChoiceRecord>),
    Schema(Vec<SchemaRecord>),
    Generation(Vec<GenerationRecord>),
    Perplexity,
    Preference,
}

/// A task file and how to score it.
#[derive(Debug, Clone)]
pub struct Task {
    /// File stem (`arc_easy`), used in metric names.
    pub name: String,
    pub path: PathBuf,
    pub kind: TaskKind,
    pub items: TaskItems,
}

/// Splits `FILE[:kind]`; a suffix that is not a kind name belongs to the path.
pub fn parse_task_spec(spec: &str) -> (PathBuf, Option<TaskKind>) {
    if let Some((path, kind)) = spec.rsplit_once(':') {
        if let Some(k) = TaskKind::parse(kind) {
            return (PathBuf::from(path), Some(k));
        }
    }
    (PathBuf::from(spec), None)
}

/// Loads `FILE[:kind]`; without a kind it is detected from the first record's keys.
pub fn load_task(spec: &str) -> Result<Task> {
    let (path, kind) = parse_task_spec(spec);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    // A JSON array (training-style files) becomes one "line" per element, numbered 0.
    let elements: Vec<String> = if text.trim_start().starts_with('[') {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| Error::eval(&path, e.line(), e.to_string()))?;
        v.iter().map(|e| e.to_string()).collect()
    } else {
        Vec::new()
    };
    let lines: Vec<(usize, &str)> = if elements.is_empty() {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    } else {
        elements.iter().map(|e| (0, e.as_str())).collect()
    };
    let kind = match kind {
        Some(k) => k,
        None => detect(&path, lines.first().copied())?,
    };
    let items = match kind {
        TaskKind::MultipleChoice => TaskItems::MultipleChoice(parse_lines(&path, &lines)?),
        TaskKind::Schema => TaskItems::Schema(parse_lines(&path, &lines)?),
        TaskKind::Generation => TaskItems::Generation(parse_lines(&path, &lines)?),
        TaskKind::Perplexity => TaskItems::Perplexity,
        TaskKind::Preference => TaskItems::Preference,
    };
    check_gold(&path, &lines, &items)?;
    let name = path
        .file_stem()
        .map_or_else(|| "task".into(), |s| s.to_string_lossy().into_owned());
    Ok(Task {
        name,
        path,
        kind,
        items,
    })
}

fn detect(path: &Path, first: Option<(usize, &str)>) -> Result<TaskKind> {
    let (line, text) = first.ok_or_else(|| Error::eval(path, 0, "no records"))?;
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::eval(path, line, e.to_string()))?;
    let has = |k: &str| v.get(k).is_some();
    Ok(if has("choices") && has("query") {
        TaskKind::MultipleChoice
    } else if has("context_options") {
        TaskKind::Schema
    } else if has("context") && has("answer") {
        TaskKind::Generation
    } else if has("chosen") && has("rejected") {
        TaskKind::Preference
    } else {
        TaskKind::Perplexity
    })
}

fn parse_lines<T: serde::de::DeserializeOwned>(
    path: &Path,
    lines: &[(usize, &str)],
) -> Result<Vec<T>> {
    lines
        .iter()
        .map(|&(n, l)| serde_json::from_str(l).map_err(|e| Error::eval(path, n, e.to_string())))
        .collect()
}

fn check_gold(path: &Path, lines: &[(usize, &str)], items: &TaskItems) -> Result<()> {
    let golds: Vec<(usize, usize)> = match items {
        TaskItems::MultipleChoice(r) => r.iter().map(|r| (r.gold, r.choices.len())).collect(),
        TaskItems::Schema(r) => r
            .iter()
            .map(|r| (r.gold, r.context_options.len()))
            .collect(),
        _ => return Ok(()),
    };
    for ((gold, n), (line, _)) in golds.into_iter().zip(lines) {
        if gold >= n {
            return Err(Error::eval(
                path,
                *line,
                format!("`gold` is {gold} but there are {n} options"),
            ));
        }
    }
    Ok(())
}
