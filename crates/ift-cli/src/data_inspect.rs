//! `ift data inspect`: what a data file becomes before hours of training are spent on it —
//! a few records rendered with their trained tokens highlighted, and whole-file statistics.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ift::data::{
    encode_preference, encode_record, encode_unpaired, load_records, BuiltinTemplate, ChatTemplate,
    DataFormat, EncodeOptions, EncodedExample, RecordBody, TemplateOptions,
};
use ift::tokenizer::HfTokenizer;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Show records as the model will see them, with trained spans highlighted, and file statistics.
    Inspect(InspectArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Fallback {
    Chatml,
    Zephyr,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model directory (reads its tokenizer.json and tokenizer_config.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Data file: JSON array or JSON Lines, any supported record format.
    #[arg(long)]
    pub data: PathBuf,
    /// How many records to show.
    #[arg(long, default_value_t = 3)]
    pub n: usize,
    /// Longest sequence in tokens (prompt + answer; at least 2); longer answers are cut, empty ones dropped.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::number_arg::max_length)]
    pub max_length: Option<usize>,
    /// Template to use when the model has none.
    #[arg(long, value_enum)]
    pub fallback_template: Option<Fallback>,
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Inspect(args) => inspect(&args),
    }
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let tok = HfTokenizer::from_dir(&args.model)?;
    let fallback = args.fallback_template.map(|f| match f {
        Fallback::Chatml => BuiltinTemplate::Chatml,
        Fallback::Zephyr => BuiltinTemplate::Zephyr,
    });
    let template = ChatTemplate::for_tokenizer(
        &tok,
        &TemplateOptions {
            name: None,
            fallback,
        },
    )?;
    let opts = EncodeOptions {
        max_length: args.max_length.or(EncodeOptions::default().max_length),
        ..Default::default()
    };
    let records = load_records(&args.data, DataFormat::Auto)?;
    let colour = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let (mut lengths, mut dropped) = (Vec::new(), 0usize);
    for (i, record) in records.iter().enumerate() {
        let t = template.as_ref();
        // (label, sequence) pairs: one for SFT records, two for a preference pair.
        let shown: Option<Vec<(String, EncodedExample)>> = match &record.body {
            RecordBody::Text { .. } | RecordBody::Conversation { .. } => {
                encode_record(record, &tok, t, &opts)?.map(|e| vec![(String::new(), e)])
            }
            RecordBody::Preference { .. } => encode_preference(record, &tok, t, &opts)?.map(|p| {
                vec![
                    (" chosen".into(), p.chosen),
                    (" rejected".into(), p.rejected),
                ]
            }),
            RecordBody::Unpaired { .. } => encode_unpaired(record, &tok, t, &opts)?
                .map(|k| vec![(format!(" label {}", k.label), k.example)]),
        };
        let Some(shown) = shown else {
            dropped += 1;
            continue;
        };
        lengths.extend(shown.iter().map(|(_, e)| e.len()));
        if i < args.n {
            for (label, e) in &shown {
                writeln!(
                    out,
                    "── {} · {:?}{label} · {} tokens, {} trained",
                    record.location,
                    record.format,
                    e.len(),
                    e.num_trained()
                )?;
                writeln!(out, "{}\n", highlight(&tok, e, colour)?)?;
            }
        }
    }
    writeln!(
        out,
        "records: {}  kept: {}  dropped (answer cut by max_length {}): {dropped}",
        records.len(),
        records.len() - dropped,
        opts.max_length.map_or("none".into(), |m| m.to_string())
    )?;
    lengths.sort_unstable();
    if let Some(&max) = lengths.last() {
        let p = |q: f64| lengths[((lengths.len() - 1) as f64 * q).round() as usize];
        writeln!(
            out,
            "tokens per sequence: min {}  p50 {}  p90 {}  p99 {}  max {max}",
            lengths[0],
            p(0.5),
            p(0.9),
            p(0.99)
        )?;
    }
    Ok(())
}

/// The sequence decoded run by run: trained runs in green on a terminal, in `[[...]]` otherwise.
fn highlight(tok: &HfTokenizer, e: &EncodedExample, colour: bool) -> Result<String> {
    let mut text = String::new();
    let mut start = 0;
    while start < e.len() {
        let trained = e.loss_mask[start];
        let end = (start..e.len())
            .find(|&k| e.loss_mask[k] != trained)
            .unwrap_or(e.len());
        let piece = tok
            .decode(&e.input_ids[start..end], false)
            .context("decoding tokens")?;
        match (trained, colour) {
            (false, _) => text.push_str(&piece),
            (true, true) => text.push_str(&format!("\x1b[42;30m{piece}\x1b[0m")),
            (true, false) => text.push_str(&format!("[[{piece}]]")),
        }
        start = end;
    }
    Ok(text)
}
