//! `ift score`: summed log-probabilities of each record, one JSON line each.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use ift::eval::{score_sequences, ScoredSequence};
use ift::model::{Pretrained, Trainable};
use ift::tokenizer::HfTokenizer;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// JSONL records `{"text": "..."}`.
    #[arg(long)]
    data: PathBuf,
    /// Where to write one `{"logprob_sum", "tokens"}` line per record.
    #[arg(long)]
    out: PathBuf,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let device = Device::Cpu;
    let Pretrained {
        model, tokenizer, ..
    } = Pretrained::load(&args.model, &Trainable::None, &device)?;
    let sequences = read_text_records(&args.data, &tokenizer)?;
    let bar = crate::progress::bar(sequences.len() as u64, "scoring");
    let scores = score_sequences(&model, &sequences, args.batch_size, &device, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    let mut text = String::new();
    for s in scores {
        text.push_str(&serde_json::to_string(&s)?);
        text.push('\n');
    }
    write_replacing(&args.out, text.as_bytes())
}

/// Tokenizes each `{"text"}` line exactly as `tokenizer(text)` does in
/// `transformers`; every token after the first is scored.
fn read_text_records(path: &PathBuf, tokenizer: &HfTokenizer) -> Result<Vec<ScoredSequence>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: invalid JSON", at()))?;
        let Some(t) = v.get("text").and_then(|t| t.as_str()) else {
            bail!("{}: missing string field `text`", at());
        };
        let ids = tokenizer.encode(t, true).with_context(at)?.ids;
        let scored = vec![true; ids.len()];
        out.push(ScoredSequence {
            input_ids: ids,
            scored,
        });
    }
    Ok(out)
}

/// Writes `bytes` to a temporary sibling, then renames it over `path`, so a
/// failure never destroys an earlier output.
pub fn write_replacing(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-ift");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
