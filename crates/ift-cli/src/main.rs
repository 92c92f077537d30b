//! The `ift` command line: a thin layer over the `ift` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ift_cli::{compare, plot};

mod chat;
mod convert;
mod data_inspect;
mod demo;
mod eval;
mod fetch;
mod frozen_lake;
mod generate;
mod merge;
mod observer;
mod progress;
mod score;
mod train;

/// Intuitive Fine-Tuning (and SFT, DPO, ...) for Hugging Face Llama-family models.
#[derive(Parser)]
#[command(name = "ift", version, about)]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Score(args) => score::run(args),
        Commands::Convert(args) => convert::run(args),
        Commands::Fetch(args) => fetch::run(args),
        Commands::Merge(args) => merge::run(args),
        Commands::Eval(args) => eval::run(args),
        Commands::Compare(args) => compare::run(args),
        Commands::Plot(args) => plot::run(args),
        Commands::Train(args) => train::run(args),
        Commands::Demo(args) => demo::run(args),
        Commands::Data(command) => data_inspect::run(command),
        Commands::FrozenLake(args) => frozen_lake::run(&args),
        Commands::Generate(args) => generate::run(args),
        Commands::Chat(args) => chat::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: the library's messages already end
/// with their source's text (`path: reason`), which `{:#}` would repeat.
fn error_message(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.ends_with(&text) {
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
