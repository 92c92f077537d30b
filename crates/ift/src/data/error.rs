//! Errors of the data pipeline. Every error about a record names its file, line and record index,
//! and, where one field is at fault, the field.

use std::fmt;
use std::path::PathBuf;

use crate::tokenizer::TokenizerError;

/// Where a record came from: file, 1-based line of its first character, 0-based record index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub index: usize,
}

impl Location {
    /// For records built in code rather than read from a file.
    pub fn inline(index: usize) -> Self {
        Self {
            path: PathBuf::from("<inline>"),
            line: 0,
            index,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} (record {})",
            self.path.display(),
            self.line,
            self.index
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{location}: field `{field}`: {message}")]
    Field {
        location: Location,
        field: String,
        message: String,
    },
    #[error("{location}: {message}")]
    Record { location: Location, message: String },
    #[error("{location}: a {found} record where {expected} records are expected")]
    WrongKind {
        location: Location,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "{location}: the tokenizer {} has no chat template{}; choose a fallback template \
         (`chatml` or `zephyr`) to train on chat records",
        tokenizer.display(),
        name.as_deref().map(|n| format!(" named {n:?}")).unwrap_or_default()
    )]
    NoChatTemplate {
        location: Location,
        tokenizer: PathBuf,
        name: Option<String>,
    },
    #[error("{origin}: chat template `{name}` does not compile: {source}")]
    TemplateSyntax {
        /// The model directory it came from, or "built-in".
        origin: String,
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("{location}: chat template `{name}` failed: {source}")]
    Render {
        location: Location,
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("{location}: chat template `{name}`: {message}")]
    TemplateShape {
        location: Location,
        name: String,
        message: String,
    },
    #[error("{location}: {source}")]
    Tokenizer {
        location: Location,
        #[source]
        source: TokenizerError,
    },
    #[error("building batch tensors: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl DataError {
    pub(crate) fn field(
        location: &Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Field {
            location: location.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}
