//! The library's error type. Every variant that comes from user input names
//! the file (and where it can, the field or tensor) at fault.

use std::path::PathBuf;

mod gguf;
pub use gguf::GgufError;

/// Errors from loading, running and saving models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written; what was there before is untouched.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An output directory could not be written; a previous version of it,
    /// if any, is untouched. `source` names the file that failed.
    #[error("{path} not written: {source}")]
    WriteDir {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// A checkpoint could not be written; the previous one is intact.
    #[error("{source}; {}", match last_good {
        Some(p) => format!("the last good checkpoint, {}, is intact", p.display()),
        None => "no earlier checkpoint exists".into(),
    })]
    CheckpointNotWritten {
        #[source]
        source: Box<Error>,
        last_good: Option<PathBuf>,
    },
    /// A JSON file is not valid JSON or does not have the expected fields.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `config.json` is readable but describes a model we cannot build.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A safetensors file is malformed or truncated.
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
    /// A weight the configuration requires is absent from the checkpoint.
    #[error("{dir}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        dir: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    /// A weight has a different shape from the one the configuration implies.
    #[error("{dir}: tensor `{name}` has shape {found:?}, config.json implies {expected:?}")]
    ShapeMismatch {
        dir: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A weight holds NaN or infinite values (a diverged or corrupt checkpoint).
    #[error("{}: tensor `{name}` holds NaN or infinite values", dir.display())]
    NonFiniteTensor { dir: PathBuf, name: String },
    /// The tokenizer and the model disagree (e.g. ids beyond the embedding matrix).
    #[error("{dir}: {message}")]
    Tokenizer { dir: PathBuf, message: String },
    /// A tokenizer file is missing or invalid.
    #[error(transparent)]
    TokenizerFile(#[from] crate::tokenizer::TokenizerError),
    /// The run configuration is invalid: `field` names the TOML key, `line`
    /// its line in `source_name` (none for a `--set` override, which is
    /// named as the source instead).
    #[error("{source_name}{}: {}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), match field.is_empty() { true => String::new(), false => format!("`{field}`: ") })]
    RunConfig {
        source_name: String,
        line: Option<usize>,
        field: String,
        message: String,
    },
    /// A PEFT adapter directory is invalid or does not fit the model.
    #[error("{path}: {message}")]
    Adapter { path: PathBuf, message: String },
    /// An input named by a config key (`what`, e.g. `model.path`) is
    /// missing or unusable as a whole (no such directory, no records).
    #[error("{what} {}: {message}", path.display())]
    Input {
        what: String,
        path: PathBuf,
        message: String,
    },
    /// A run cannot be resumed as asked (no checkpoint, a changed contract,
    /// a `--set` that would change the steps already taken).
    #[error("cannot resume {}: {message}", dir.display())]
    Resume { dir: PathBuf, message: String },
    /// The request itself is wrong (an output directory holding a run, ...).
    #[error("{0}")]
    Usage(String),
    /// Training could not go on (optimiser errors, too many bad steps, ...).
    #[error("{0}")]
    Train(String),
    /// A stop was asked for (SIGINT, SIGTERM) and honoured; the message says
    /// what was kept and how to continue (`crate::interrupt`).
    #[error("{0}")]
    Interrupted(String),
    /// A checkpoint's file is missing, altered or unusable; names the file.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// An output would replace or sit inside something that is not ours to
    /// overwrite (`crate::atomic::guard_output_dir`).
    #[error("{0}")]
    Output(String),
    /// Generation was asked for something impossible (an empty prompt, ...).
    #[error("generate: {0}")]
    Generate(String),
    /// Loading or encoding the data failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// An evaluation task file has a bad record (`line` is 1-based; 0 = the whole file).
    #[error("{}", at_line(path, *line, message))]
    Eval {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A tensor operation failed; these indicate a bug or an impossible shape.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What kind of failure an error is: the `ift` binary's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The command line, the run configuration or the request is wrong.
    Usage,
    /// A data, model, tokenizer or task file is missing, unreadable or
    /// malformed, or an output cannot be written.
    Input,
    /// Training could not go on (non-finite steps), or a bug.
    Internal,
    /// Stopped on request (SIGINT/SIGTERM) with the work so far saved.
    Interrupted,
}

impl Error {
    /// The class of this error, for exit codes.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::RunConfig { .. }
            | Error::Resume { .. }
            | Error::Usage(_)
            | Error::Output(_)
            | Error::Generate(_) => ErrorClass::Usage,
            Error::Io { .. }
            | Error::Input { .. }
            | Error::Write { .. }
            | Error::WriteDir { .. }
            | Error::CheckpointNotWritten { .. }
            | Error::Json { .. }
            | Error::Config { .. }
            | Error::Safetensors { .. }
            | Error::MissingTensor { .. }
            | Error::ShapeMismatch { .. }
            | Error::NonFiniteTensor { .. }
            | Error::Tokenizer { .. }
            | Error::TokenizerFile(_)
            | Error::Data(_)
            | Error::Eval { .. }
            | Error::Gguf(_)
            | Error::Checkpoint { .. }
            | Error::Adapter { .. } => ErrorClass::Input,
            Error::Interrupted(_) => ErrorClass::Interrupted,
            Error::Train(_) | Error::Candle(_) => ErrorClass::Internal,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn eval(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Error::Eval {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `path:line: message`, or `path: message` when the message is about the
/// whole file (line 0).
fn at_line(path: &std::path::Path, line: usize, message: &str) -> String {
    match line {
        0 => format!("{}: {message}", path.display()),
        l => format!("{}:{l}: {message}", path.display()),
    }
}
