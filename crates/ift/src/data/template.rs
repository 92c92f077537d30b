//! Chat templates rendered as `transformers` renders them: Jinja (via minijinja and its Python
//! compatibility layer) with `trim_blocks` and `lstrip_blocks` on, `raise_exception`,
//! `strftime_now`, a Python-style `tojson`, the special tokens and `tools=None` in the context.

use std::path::Path;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::json_py::to_python_json;
use super::records::Message;
use super::strftime::strftime_now;
use crate::tokenizer::HfTokenizer;

/// Templates offered when a model ships none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n`, with no default system prompt.
    Chatml,
    /// `<|role|>\ncontent` + EOS, HuggingFaceH4/zephyr-7b-beta's template.
    Zephyr,
}

/// Instructions one render may run (see `ChatTemplate::compile`).
pub const TEMPLATE_FUEL: u64 = 10_000_000;

const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
    message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}\
    {{ '<|im_start|>assistant\n' }}{% endif %}";
const ZEPHYR: &str = "{% for message in messages %}\n{% if message['role'] == 'user' %}\n\
    {{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n\
    {{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n\
    {{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n\
    {% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

impl BuiltinTemplate {
    pub fn source(self) -> &'static str {
        match self {
            BuiltinTemplate::Chatml => CHATML,
            BuiltinTemplate::Zephyr => ZEPHYR,
        }
    }
}

/// Which template to use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateOptions {
    /// Named template from `tokenizer_config.json` (`None`: the default one, as transformers).
    pub name: Option<String>,
    /// Used only when the tokenizer has no such template. `None` (default): chat records are an
    /// error on such a model, because guessing a format the model was not trained on is worse.
    pub fallback: Option<BuiltinTemplate>,
}

/// A compiled template plus the special tokens it sees. [`ChatTemplate::plain`] is the
/// template-free rendering used for string prompt/completion records on a model without one.
pub struct ChatTemplate {
    name: String,
    env: Option<Environment<'static>>,
    tokens: Vec<(&'static str, Option<String>)>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// The tokenizer's template chosen by `options`, else the fallback, else `None`.
    pub fn for_tokenizer(
        tok: &HfTokenizer,
        options: &TemplateOptions,
    ) -> Result<Option<Self>, DataError> {
        if let Some(source) = tok.chat_template(options.name.as_deref()) {
            let name = options.name.clone().unwrap_or_else(|| "default".into());
            let origin = tok.path().parent().unwrap_or(Path::new(".")).display();
            return Self::compile(&origin.to_string(), &name, source, tok).map(Some);
        }
        match options.fallback {
            Some(b) => {
                let name = format!("{b:?}").to_lowercase();
                Self::compile("built-in", &name, b.source(), tok).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Compiles `source`; `{% generation %}` blocks (a transformers extension) render as plain blocks.
    pub fn new(name: &str, source: &str, tok: &HfTokenizer) -> Result<Self, DataError> {
        Self::compile("template", name, source, tok)
    }

    fn compile(
        origin: &str,
        name: &str,
        source: &str,
        tok: &HfTokenizer,
    ) -> Result<Self, DataError> {
        let mut env = Environment::new();
        // A hostile template (an endless loop, runaway recursion) must fail,
        // not hang: fuel bounds the instructions of one render (a long real
        // conversation needs well under a tenth of it), and minijinja's own
        // recursion limit bounds nesting.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |format: String| strftime_now(&format));
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", strip_generation_tags(source))
            .map_err(|source| DataError::TemplateSyntax {
                origin: origin.to_string(),
                name: name.to_string(),
                source,
            })?;
        Ok(Self {
            name: name.to_string(),
            env: Some(env),
            tokens: special_tokens(tok),
        })
    }

    /// No template: the contents concatenated, the EOS token after each assistant message, and
    /// the tokenizer's post-processor adds its special tokens as `tokenizer(text)` would.
    pub fn plain(tok: &HfTokenizer) -> Self {
        Self {
            name: "plain".into(),
            env: None,
            tokens: special_tokens(tok),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the rendered text is tokenized with the post-processor's special tokens. A Jinja
    /// template writes its own BOS, so transformers tokenizes it without (no duplicated BOS).
    pub fn adds_special_tokens(&self) -> bool {
        self.env.is_none()
    }

    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, Error> {
        let token = |key: &str| {
            self.tokens
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.clone())
        };
        let Some(env) = &self.env else {
            let eos = token("eos_token").unwrap_or_default();
            return Ok(messages
                .iter()
                .map(|m| match m.role {
                    super::records::Role::Assistant => format!("{}{eos}", m.content),
                    _ => m.content.clone(),
                })
                .collect());
        };
        let mut ctx: Vec<(&str, Value)> = vec![
            ("messages", Value::from_serialize(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
        ];
        ctx.extend(
            self.tokens
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (*k, Value::from(v.as_str())))),
        );
        env.get_template("chat")?.render(Value::from_iter(ctx))
    }
}

fn special_tokens(tok: &HfTokenizer) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("bos_token", tok.bos_token().map(str::to_string)),
        ("eos_token", tok.eos_token().map(str::to_string)),
        ("pad_token", tok.pad_token().map(str::to_string)),
    ]
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=indent)`, which transformers installs
/// as `tojson` (minijinja's own escapes HTML characters and drops the spaces after `,` and `:`).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    to_python_json(&value, indent)
        .map(Value::from_safe_string)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// Rewrites `{% generation %}`/`{% endgeneration %}` to `{% if true %}`/`{% endif %}`, keeping
/// whitespace control, so such templates render exactly as without the markers.
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let (before, tag) = rest.split_at(open);
        out.push_str(before);
        // The close is searched after the opening `{%`: in `{%}` the `%` of
        // the opening is not a close (found by fuzzing, a panic before).
        let Some(close) = tag[2..].find("%}").map(|i| i + 2) else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..close];
        let word = inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let replacement = match word {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(r) => out.push_str(&format!("{{%{}{}{}%}}", lead(inner), r, trail(inner))),
            None => out.push_str(&tag[..close + 2]),
        }
        rest = &tag[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The whitespace-control mark at the start of a tag's inside (`-` or `+`), and a space.
fn lead(inner: &str) -> String {
    let ctl = if inner.starts_with(['-', '+']) {
        &inner[..1]
    } else {
        ""
    };
    format!("{ctl} ")
}

/// A space and the whitespace-control mark at the end of a tag's inside.
fn trail(inner: &str) -> String {
    let ctl = if inner.ends_with(['-', '+']) {
        &inner[inner.len() - 1..]
    } else {
        ""
    };
    format!(" {ctl}")
}
