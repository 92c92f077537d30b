//! The `ift` command line: parses arguments and hands each subcommand to its module.

mod data_inspect;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ift",
    version,
    about = "Intuitive Fine-Tuning and its baselines"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Look at training data.
    #[command(subcommand)]
    Data(data_inspect::DataCommand),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Commands::Data(command) => data_inspect::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
