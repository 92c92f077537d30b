//! The run configuration: one TOML file with `[model]`, `[data]`,
//! `[objective]` and `[train]`, every key documented, unknown keys rejected,
//! any key overridable with `section.key=value`. The fully resolved config is
//! written into the run directory before step 0.
//!
//! A relative path in the file is relative to the file's folder; one given
//! with `--set` is relative to the working directory (`config_paths.rs`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::adapter::{AdapterConfig, AdapterKind};
use crate::data::{
    BuiltinTemplate, DataFormat, EncodeOptions, LoadOptions, PromptTruncation, TemplateOptions,
    TrainOn,
};
use crate::error::{Error, Result};
use crate::model::{Quantize, Trainable};
use crate::objective::{from_table, FieldError, Objective, ObjectiveKind};
use crate::train::{TrainConfig, TrainDtype};

#[path = "config_paths.rs"]
mod paths;
#[path = "config_range.rs"]
pub mod range;

/// `[model]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Hugging Face model directory to fine-tune. Required.
    pub path: PathBuf,
    /// Parameters kept frozen, by Hugging Face name prefix (e.g.
    /// `"model.embed_tokens"`). Default: none, full fine-tuning.
    pub freeze: Vec<String>,
    /// A PEFT adapter directory to continue training (needs `adapter.kind =
    /// "lora"` with the same `r`, `alpha`, `target_modules`, `use_rslora`).
    /// Default: none, a fresh adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    /// The frozen base's projections held in memory as `none` (f32, default),
    /// `q8_0` or `q4_k` (QLoRA-style; needs `adapter.kind = "lora"`).
    pub quantize: Quantize,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Training records (JSONL or a JSON array; chat, prompt/completion,
    /// Alpaca, ShareGPT or text). Required.
    pub train: PathBuf,
    /// Held-out records for `eval_loss`. Default: none.
    pub eval: Option<PathBuf>,
    /// Share of the encoded training examples held out for `eval_loss`
    /// instead (chosen with `train.seed`; needs `data.eval` unset). Default 0: none.
    pub eval_split: f64,
    /// File syntax: `auto` (default: by content), `json_array`, `json_lines`.
    pub format: DataFormat,
    /// Longest sequence in tokens, prompt and answer together. A longer
    /// example loses the end of its answer (`max_length` never cuts the
    /// prompt; `max_prompt_length` does), and one left with no trained answer
    /// token is dropped and counted. Default 1024, TRL's default and the IFT paper's.
    pub max_length: Option<usize>,
    /// Longest prompt in tokens: a longer prompt is cut to it (which end
    /// survives: `prompt_truncation`) before `max_length` applies. Default: no limit.
    pub max_prompt_length: Option<usize>,
    /// Which end of a long prompt survives: `keep_end` (default, nearest the
    /// answer) or `keep_start`.
    pub prompt_truncation: PromptTruncation,
    /// `all_assistant_turns` (default) or `last_assistant_turn`.
    pub train_on: TrainOn,
    /// Train on prompt tokens too. Default false.
    pub train_on_prompt: bool,
    /// Named chat template from `tokenizer_config.json`. Default: the model's default one.
    pub template: Option<String>,
    /// Template for a model without one: `chatml` or `zephyr`. Default none
    /// (chat data on such a model is an error rather than a guess).
    pub template_fallback: Option<BuiltinTemplate>,
}

impl Default for DataConfig {
    fn default() -> Self {
        let encode = EncodeOptions::default();
        Self {
            train: PathBuf::new(),
            eval: None,
            eval_split: 0.0,
            format: DataFormat::Auto,
            max_length: encode.max_length,
            max_prompt_length: encode.max_prompt_length,
            prompt_truncation: encode.prompt_truncation,
            train_on: encode.train_on,
            train_on_prompt: encode.train_on_prompt,
            template: None,
            template_fallback: None,
        }
    }
}

impl DataConfig {
    /// The data pipeline's options for these settings.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            format: self.format,
            template: TemplateOptions {
                name: self.template.clone(),
                fallback: self.template_fallback,
            },
            encode: EncodeOptions {
                max_length: self.max_length,
                max_prompt_length: self.max_prompt_length,
                prompt_truncation: self.prompt_truncation,
                train_on: self.train_on,
                train_on_prompt: self.train_on_prompt,
            },
        }
    }
}

/// The whole run configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    pub objective: Objective,
    pub train: TrainConfig,
    pub adapter: AdapterConfig,
}

/// The sections of a run configuration.
const SECTIONS: [&str; 5] = ["model", "data", "objective", "train", "adapter"];

/// A key of earlier versions that no longer exists.
pub struct RemovedKey {
    pub section: &'static str,
    pub key: &'static str,
    /// The value (as TOML) whose behaviour is now the only one: a run saved
    /// with it continues the same trajectory (`crate::resume`).
    pub remains: &'static str,
    /// What to do instead, for the error naming the key.
    pub why: &'static str,
}

/// Keys of earlier versions that no longer exist. A run directory written by
/// such a version still resumes (`crate::resume::without_removed_keys`).
pub const REMOVED_KEYS: [RemovedKey; 1] = [RemovedKey {
    section: "train",
    key: "engine",
    remains: "\"explicit\"",
    why: "was removed: training always runs on the explicit engine (TDPO included), and the graph-built model is kept only as the tests' reference; delete the line",
}];

impl RunConfig {
    /// Parses the config file `path` whose contents are `text`: its relative
    /// paths are anchored at the file's folder and made absolute, as are the
    /// paths of `overrides` (at the working directory). Otherwise as [`Self::parse`].
    pub fn parse_file(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let base = paths::folder_of(path);
        Self::parse_in(text, &path.display().to_string(), Some(&base), overrides)
    }

    /// Parses TOML `text` (named `source` in errors), applies `overrides`
    /// (`section.key=value`, the value in TOML syntax or a bare string), and
    /// validates the result. Paths are taken as written.
    pub fn parse(text: &str, source: &str, overrides: &[String]) -> Result<Self> {
        Self::parse_in(text, source, None, overrides)
    }

    fn parse_in(
        text: &str,
        source: &str,
        base: Option<&Path>,
        overrides: &[String],
    ) -> Result<Self> {
        // An error names the `--set` that caused it, or the file and line.
        let err = |field: &str, message: String| {
            let set = overrides.iter().find(|o| {
                let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k).trim();
                !field.is_empty()
                    && (field == key
                        || field.starts_with(&format!("{key}."))
                        || key.starts_with(&format!("{field}.")))
            });
            let (source_name, line) = match set {
                Some(o) => (format!("--set {o}"), None),
                None => (source.to_string(), line_of(text, field)),
            };
            Error::RunConfig {
                source_name,
                line,
                field: field.into(),
                message,
            }
        };
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| Error::RunConfig {
                    source_name: source.into(),
                    line: e.span().map(|s| line_at(text, s.start)),
                    field: String::new(),
                    message: e.message().trim_end().replace('\n', "; "),
                })?;
        if let Some(base) = base {
            paths::anchor_table(&mut table, base);
        }
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| err(o, "an override is `section.key=value`".into()))?;
            let (section, name) = key
                .trim()
                .split_once('.')
                .ok_or_else(|| err(key, "name a section and a key, e.g. `train.lr`".into()))?;
            let value = parse_value(value.trim());
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(t) = entry else {
                return Err(err(section, "is not a section".into()));
            };
            t.insert(name.to_string(), value);
            if base.is_some() {
                paths::anchor_key(&mut table, section, name, &paths::working_dir());
            }
        }
        let config = Self::from_sections(table).map_err(|e| err(&e.field, e.message))?;
        config.validate().map_err(|(f, m)| err(f, m))?;
        Ok(config)
    }

    /// Each section deserialised on its own, so that an error names its key.
    fn from_sections(table: toml::Table) -> std::result::Result<Self, FieldError> {
        let mut sections: std::collections::BTreeMap<String, toml::Table> = Default::default();
        for (name, value) in table {
            if !SECTIONS.contains(&name.as_str()) {
                let m = format!(
                    "unknown section; the sections are [{}]",
                    SECTIONS.join("], [")
                );
                return Err(FieldError::new(name, m));
            }
            let toml::Value::Table(t) = value else {
                return Err(FieldError::new(
                    name,
                    "must be a section ([name] with keys)",
                ));
            };
            sections.insert(name, t);
        }
        for r in REMOVED_KEYS {
            if sections
                .get(r.section)
                .is_some_and(|t| t.contains_key(r.key))
            {
                return Err(FieldError::new(format!("{}.{}", r.section, r.key), r.why));
            }
        }
        let mut take = |name: &str| sections.remove(name).unwrap_or_default();
        Ok(RunConfig {
            model: from_table(&take("model"), "model")?,
            data: from_table(&take("data"), "data")?,
            objective: Objective::from_table(take("objective"))?,
            train: from_table(&take("train"), "train")?,
            adapter: from_table(&take("adapter"), "adapter")?,
        })
    }

    /// Checks what types cannot: required keys and value ranges.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.model.path.as_os_str().is_empty() {
            return Err((
                "model.path",
                "is required (a Hugging Face model directory)".into(),
            ));
        }
        if self.data.train.as_os_str().is_empty() {
            return Err((
                "data.train",
                "is required (a file of training records)".into(),
            ));
        }
        let split = self.data.eval_split;
        if !(0.0..1.0).contains(&split) {
            return Err(("data.eval_split", format!("must be in [0, 1), got {split}")));
        }
        if split > 0.0 && self.data.eval.is_some() {
            return Err((
                "data.eval_split",
                "and data.eval both set; choose one".into(),
            ));
        }
        self.data
            .load_options()
            .encode
            .validate()
            .map_err(|(field, m)| match field {
                "max_prompt_length" => ("data.max_prompt_length", m),
                _ => ("data.max_length", m),
            })?;
        self.adapter.validate()?;
        let lora = self.adapter.kind == AdapterKind::Lora;
        let needs_lora = |what: &str| format!("{what} needs adapter.kind = \"lora\"");
        if !lora && self.model.quantize != Quantize::None {
            return Err(("model.quantize", needs_lora("a quantised base")));
        }
        if !lora && self.model.adapter.is_some() {
            return Err(("model.adapter", needs_lora("continuing an adapter")));
        }
        if lora && !self.model.freeze.is_empty() {
            let m = "has no effect with adapter.kind = \"lora\" (the whole base is frozen)";
            return Err(("model.freeze", m.into()));
        }
        if self.train.dtype == TrainDtype::Bf16 && self.objective.kind() == ObjectiveKind::Tdpo {
            let m = "bf16 is not available for TDPO (its whole-distribution KL is not checked in bf16); use train.dtype = \"f32\"";
            return Err(("train.dtype", m.into()));
        }
        self.train.validate()
    }

    /// The resolved config as TOML, every key present (but unset options).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config serialises")
    }

    /// Which parameters train.
    pub fn trainable(&self) -> Trainable {
        match self.model.freeze.is_empty() {
            true => Trainable::All,
            false => Trainable::AllExcept(self.model.freeze.clone()),
        }
    }
}

/// The 1-based line of `field` (`train.optimizer`) in the TOML `text`: the
/// line of its deepest key that is present (a missing key: its section's).
fn line_of(text: &str, field: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut span = None;
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let Some((key, item)) = table.get_key_value(part) else {
            break;
        };
        span = key.span().or_else(|| item.span()).or(span);
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    span.map(|s| line_at(text, s.start))
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML value, or the text as a string when it is not one (so that
/// `data.train=file.jsonl` needs no quotes).
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}
