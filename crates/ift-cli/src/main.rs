//! The `ift` command line: a thin layer over the `ift` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ift_cli::{compare, plot};

mod bench;
mod chat;
mod convert;
mod data_inspect;
mod demo;
mod demo_task;
mod device_arg;
mod eval;
mod fetch;
mod frozen_lake;
mod generate;
mod malloc;
mod merge;
mod number_arg;
mod observer;
mod progress;
mod score;
mod thread_env;
mod train;

/// Exit codes (also in `ift --help` and docs/errors.md).
const EXIT_INTERNAL: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_INPUT: u8 = 3;
const EXIT_INTERRUPTED: u8 = 4;
/// A second SIGINT/SIGTERM: exited at once (128 + SIGINT, the shell's convention).
pub const EXIT_KILLED: i32 = 130;

const EXIT_CODES: &str = "Exit codes:
  0    success
  1    training failed (non-finite steps, or weights that stopped being finite) or an internal error
  2    usage or configuration error (command line, run config, a resume refused)
  3    input or output error (a data, model, tokenizer or task file missing or malformed; an output that cannot be written)
  4    interrupted by SIGINT or SIGTERM after saving the work so far (a checkpoint: `ift train --resume` continues; the reference pass: its cache, the same command continues)
  130  a second SIGINT/SIGTERM: exited at once (the last checkpoint is intact)";

/// Intuitive Fine-Tuning (and SFT, DPO, ...) for Hugging Face Llama-family models.
#[derive(Parser)]
#[command(name = "ift", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Sum the log-probabilities a model gives to each record of a JSONL file.
    Score(score::ScoreArgs),
    /// The main job on the embedded default: a tiny model learns a task with SFT and IFT side by side, nothing downloaded.
    Demo(demo::DemoArgs),
    /// Fine-tune a model as a TOML run configuration says.
    Train(train::TrainArgs),
    /// Look at training data as the trainer will see it.
    #[command(subcommand)]
    Data(data_inspect::DataCommand),
    /// The explainable Frozen Lake experiment: SFT, IFT, DPO and ORPO against the exact optimal policy, under each reading of the set-up.
    FrozenLake(frozen_lake::FrozenLakeArgs),
    /// Draw loss and learning-rate curves (PNG) from a run's metrics.jsonl.
    Plot(plot::PlotArgs),
    /// Benchmark tasks (multiple choice, schema, generation, perplexity) from JSONL files.
    Eval(eval::EvalArgs),
    /// The final evaluation figures of several runs side by side, as Markdown.
    Compare(compare::CompareArgs),
    /// Re-save a model directory (e.g. in another dtype), or convert a GGUF file to one.
    Convert(convert::ConvertArgs),
    /// Merge a PEFT LoRA adapter into its base model: one Hugging Face directory.
    Merge(merge::MergeArgs),
    /// Download a ready model and convert it (prints the model directory).
    Fetch(fetch::FetchArgs),
    /// Continue a prompt (or answer it with --chat), streaming the text.
    Generate(generate::GenerateArgs),
    /// Talk to a model in the terminal with its chat template.
    Chat(chat::ChatArgs),
    /// Time a training step or a forward on a random model of a benchmark config (one JSON line).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    thread_env::set_defaults();
    malloc::keep_freed_memory();
    let cli = Cli::parse();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Commands::Score(args) => done(score::run(args)),
        Commands::Convert(args) => done(convert::run(args)),
        Commands::Fetch(args) => done(fetch::run(args)),
        Commands::Merge(args) => done(merge::run(args)),
        Commands::Eval(args) => done(eval::run(args)),
        Commands::Compare(args) => done(compare::run(args)),
        Commands::Plot(args) => done(plot::run(args)),
        Commands::Train(args) => train::run(args).map(|end| match end {
            train::Ended::Finished => ExitCode::SUCCESS,
            train::Ended::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        }),
        Commands::Demo(args) => done(demo::run(args)),
        Commands::Data(command) => done(data_inspect::run(command)),
        Commands::FrozenLake(args) => done(frozen_lake::run(&args)),
        Commands::Generate(args) => done(generate::run(args)),
        Commands::Chat(args) => done(chat::run(args)),
        Commands::Bench(args) => done(bench::run(args)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {}", error_message(&e));
        ExitCode::from(exit_code(&e))
    })
}

/// The exit code of an error: the class of the library error in its chain;
/// an I/O error of the CLI's own is an input error; anything else internal.
fn exit_code(e: &anyhow::Error) -> u8 {
    if let Some(lib) = e.chain().find_map(|c| c.downcast_ref::<ift::Error>()) {
        return match lib.class() {
            ift::ErrorClass::Usage => EXIT_USAGE,
            ift::ErrorClass::Input => EXIT_INPUT,
            ift::ErrorClass::Internal => EXIT_INTERNAL,
            ift::ErrorClass::Interrupted => EXIT_INTERRUPTED,
        };
    }
    match e.chain().any(|c| c.is::<std::io::Error>()) {
        true => EXIT_INPUT,
        false => EXIT_INTERNAL,
    }
}

/// The error and its causes, each once: the library's messages already hold
/// their source's text (`path: reason`), which `{:#}` would repeat.
fn error_message(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}

#[cfg(test)]
mod error_message_tests {
    use super::error_message;

    #[test]
    fn each_cause_is_printed_once() {
        // Issue 13: `cannot read /tmp: Is a directory (os error 21): Is a directory (os error 21)`.
        let io = std::io::Error::other("Is a directory (os error 21)");
        let lib = ift::Error::Io {
            path: "/tmp".into(),
            source: io,
        };
        let e = anyhow::Error::from(lib).context("reading the data");
        assert_eq!(
            error_message(&e),
            "reading the data: /tmp: Is a directory (os error 21)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_message(&plain), "outer: inner");
    }
}
