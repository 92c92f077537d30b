//! `ift frozen-lake`: runs the experiment, prints the table, writes the pictures.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use frozen_lake::experiment::{format_table, run as run_experiment, ExperimentConfig};
use frozen_lake::map::{Map, MAP_4X4, MAP_8X8, MAP_ROUTE};
use frozen_lake::policy::Encoding;

#[derive(Debug, Args)]
pub struct FrozenLakeArgs {
    /// `route` (one optimal and one sub-optimal route), `4x4`, `8x8`, or a text file of S/F/H/G rows.
    #[arg(long, default_value = "route")]
    pub map: String,
    /// Number of training seeds (0..N); results are mean ± std over them.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Optimiser steps per run (the same for every method).
    #[arg(long)]
    pub steps: Option<usize>,
    /// State encoding fed to the network: `rowcol` (row one-hot + column one-hot) or `onehot`.
    #[arg(long, default_value = "rowcol", value_parser = parse_encoding)]
    pub encoding: Encoding,
    /// IFT's temporal-residual weight λ (default 0.2; 0 turns mixing off).
    #[arg(long)]
    pub ift_lambda: Option<f64>,
    /// IFT's relation-propagation discount γ (default 0.95; 0 turns propagation off).
    #[arg(long)]
    pub ift_gamma: Option<f64>,
    /// Run this many SFT steps before DPO and use the result as DPO's start and reference
    /// (default 0: DPO starts from the untrained network, like every other method).
    #[arg(long, default_value_t = 0)]
    pub dpo_sft_warmup: usize,
    /// Folder for the PNG pictures, `results.json` and `config.json`.
    #[arg(long, default_value = "frozen-lake-out")]
    pub out: PathBuf,
}

fn parse_encoding(s: &str) -> Result<Encoding, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("unknown encoding {s:?}; use rowcol or onehot"))
}

fn load_map(name: &str) -> anyhow::Result<Map> {
    let text = match name {
        "route" => MAP_ROUTE.to_string(),
        "4x4" => MAP_4X4.to_string(),
        "8x8" => MAP_8X8.to_string(),
        path => {
            std::fs::read_to_string(path).with_context(|| format!("reading map file {path}"))?
        }
    };
    Map::parse(&text).with_context(|| format!("map {name}"))
}

pub fn run(args: &FrozenLakeArgs) -> anyhow::Result<()> {
    let map = load_map(&args.map)?;
    let mut cfg = ExperimentConfig {
        seeds: args.seeds.max(1),
        ..ExperimentConfig::default()
    };
    cfg.train.encoding = args.encoding;
    cfg.methods.ift_lambda = args.ift_lambda.unwrap_or(cfg.methods.ift_lambda);
    cfg.methods.propagation.gamma = args.ift_gamma.unwrap_or(cfg.methods.propagation.gamma);
    cfg.train.dpo_sft_warmup = args.dpo_sft_warmup;
    if let Some(steps) = args.steps {
        cfg.train.steps = steps;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: String| {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("config.json", serde_json::to_string_pretty(&cfg)?)?;
    let result = run_experiment(&map, &cfg)?;
    println!(
        "map {} ({}×{}), {:?} encoding, {} seeds, {} steps",
        args.map, map.nrow, map.ncol, args.encoding, cfg.seeds, cfg.train.steps
    );
    println!("chosen (optimal) states:     {:?}", result.chosen.states);
    println!(
        "rejected (sub-optimal) states: {:?}",
        result.rejected.states
    );
    println!();
    print!("{}", format_table(&result));
    write("results.json", serde_json::to_string_pretty(&result)?)?;
    for path in frozen_lake::picture::write_pictures(&result, &args.out)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_table_files_and_pictures() {
        let dir = tempfile::tempdir().unwrap();
        let args = FrozenLakeArgs {
            map: "route".into(),
            seeds: 1,
            steps: Some(5),
            encoding: Encoding::Rowcol,
            ift_lambda: None,
            ift_gamma: None,
            dpo_sft_warmup: 0,
            out: dir.path().into(),
        };
        run(&args).unwrap();
        for name in [
            "config.json",
            "results.json",
            "policies.png",
            "visits.png",
            "mse_curves.png",
        ] {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            assert!(!bytes.is_empty(), "{name}");
            if name.ends_with(".png") {
                assert_eq!(&bytes[1..4], b"PNG", "{name}");
            }
        }
    }

    #[test]
    fn maps_without_a_worse_route_are_refused_not_faked() {
        let args = FrozenLakeArgs {
            map: "4x4".into(),
            seeds: 1,
            steps: Some(1),
            encoding: Encoding::Rowcol,
            ift_lambda: None,
            ift_gamma: None,
            dpo_sft_warmup: 0,
            out: tempfile::tempdir().unwrap().path().into(),
        };
        // Gymnasium's 4×4 has two shortest routes and no strictly worse loop-free one.
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(err.contains("no sub-optimal route"), "{err}");
    }
}
