//! `ift frozen-lake`: runs the experiment under one reading of the paper's set-up (or all
//! of them), prints the tables, writes the pictures and the Markdown of the page.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use frozen_lake::experiment::{run as run_experiment, ExperimentConfig, ExperimentResult};
use frozen_lake::ift_method::Lambda;
use frozen_lake::map::{Map, MAP_4X4, MAP_8X8, MAP_ROUTE};
use frozen_lake::policy::Encoding;
use frozen_lake::report::{overview, section};
use frozen_lake::Setup;

#[derive(Debug, Args)]
pub struct FrozenLakeArgs {
    /// The reading of the paper's set-up to run.
    #[arg(long, default_value = "baseline", value_parser = setup_parser(), conflicts_with = "all_setups")]
    pub setup: Setup,
    /// Run every reading, each into its own folder under --out, and write the page's
    /// sections and summary to --out/frozen-lake-setups.md.
    #[arg(long)]
    pub all_setups: bool,
    /// `route` (one optimal and one sub-optimal route), `4x4`, `8x8`, or a text file of S/F/H/G rows.
    #[arg(long, default_value = "route")]
    pub map: String,
    /// Number of training seeds (0..N); results are mean ± std over them.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: u64,
    /// Optimiser steps per run and stage (the same for every method; default 200; at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    pub steps: Option<usize>,
    /// State encoding fed to the network: `rowcol` (row one-hot + column one-hot) or `onehot`.
    #[arg(long, default_value = "rowcol", value_parser = parse_encoding)]
    pub encoding: Encoding,
    /// IFT's temporal-residual weight λ in [0, 1], static (default 0.2; 0 turns mixing off).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::number_arg::unit)]
    pub ift_lambda: Option<f64>,
    /// IFT's relation-propagation discount γ in [0, 1] (default 0.95; 0 turns propagation off).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::number_arg::unit)]
    pub ift_gamma: Option<f64>,
    /// Folder for the PNG pictures, `results.json`, `config.json` and `report.md`.
    #[arg(long, default_value = "frozen-lake-out")]
    pub out: PathBuf,
}

/// `--setup NAME`, every reading listed with its summary in `--help`.
fn setup_parser() -> impl TypedValueParser<Value = Setup> {
    let values = Setup::ALL
        .map(|s| PossibleValue::new(s.name()).help(format!("{} — {}", s.title(), s.summary())));
    PossibleValuesParser::new(values).map(|name| Setup::from_name(&name).expect("listed above"))
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

fn config(args: &FrozenLakeArgs, setup: Setup) -> anyhow::Result<ExperimentConfig> {
    let mut cfg = ExperimentConfig {
        seeds: args.seeds,
        setup,
        ..ExperimentConfig::default()
    };
    cfg.train.encoding = args.encoding;
    // The flags' ranges are checked as they are parsed (`number_arg`).
    if let Some(value) = args.ift_lambda {
        cfg.methods.ift.lambda = Lambda::Static { value };
    }
    if let Some(gamma) = args.ift_gamma {
        cfg.methods.ift.weights.gamma = gamma;
    }
    if let Some(steps) = args.steps {
        cfg.train.steps = steps;
    }
    Ok(cfg)
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    Ok(ift::model::write_file_atomically(&path, text.as_bytes())?)
}

/// One reading into `dir`: the configuration first (before training), then the results,
/// the reading's section of the page and the pictures.
fn run_one(map: &Map, cfg: &ExperimentConfig, dir: &Path) -> anyhow::Result<ExperimentResult> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write(dir, "config.json", &serde_json::to_string_pretty(cfg)?)?;
    let result = run_experiment(map, cfg)?;
    write(dir, "results.json", &serde_json::to_string_pretty(&result)?)?;
    write(dir, "report.md", &section(&result, "##"))?;
    frozen_lake::picture::write_pictures(&result, dir)?;
    Ok(result)
}

pub fn run(args: &FrozenLakeArgs) -> anyhow::Result<()> {
    // Every matrix here is tiny (at most 100 × 32): handing one to gemm's thread pool costs
    // far more than the product (the 20-seed baseline: 9.2 s with 2 threads, 2.1 s with 1).
    // Set before any tensor work, while this process runs no other thread.
    crate::thread_env::set_default("RAYON_NUM_THREADS", "1");
    let map = load_map(&args.map)?;
    // Its files (config.json, results.json, ...) would overwrite a model's.
    let map_file = Path::new(&args.map);
    let inputs: Vec<&Path> = match map_file.is_file() {
        true => vec![map_file],
        false => vec![],
    };
    ift::atomic::guard_output_dir(&args.out, "--out", &inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    ift::atomic::mark_output_dir(&args.out, "ift frozen-lake")?;
    let setups: Vec<Setup> = if args.all_setups {
        Setup::ALL.to_vec()
    } else {
        vec![args.setup]
    };
    let started = Instant::now();
    let mut results = vec![];
    for setup in setups {
        let cfg = config(args, setup)?;
        let dir = if args.all_setups {
            args.out.join(setup.name())
        } else {
            args.out.clone()
        };
        let result = run_one(&map, &cfg, &dir)
            .with_context(|| format!("--setup {} on map {}", setup.name(), args.map))?;
        println!("{}", section(&result, "##"));
        println!("wrote {}", dir.display());
        results.push(result);
    }
    if args.all_setups {
        let mut page: String = results.iter().map(|r| section(r, "###") + "\n").collect();
        page += &format!("### Summary\n\n{}", overview(&results));
        write(&args.out, "frozen-lake-setups.md", &page)?;
        println!("{}", overview(&results));
        println!("wrote {}", args.out.join("frozen-lake-setups.md").display());
    }
    println!(
        "{} reading(s) in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
