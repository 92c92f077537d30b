//! `ift`: the command-line trainer. Each subcommand lives in its own module.

use clap::{Parser, Subcommand};

mod frozen_lake;

#[derive(Parser)]
#[command(
    name = "ift",
    version,
    about = "Intuitive Fine-Tuning and its baselines"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// The explainable Frozen Lake experiment: SFT, IFT, DPO and ORPO against the exact optimal policy.
    FrozenLake(frozen_lake::FrozenLakeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Commands::FrozenLake(args) => frozen_lake::run(&args),
    }
}
