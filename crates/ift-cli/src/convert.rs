//! `ift convert`: re-save a model directory (e.g. to another dtype), or turn a
//! GGUF file (llama.cpp, Ollama, LM Studio) into a Hugging Face directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use ift::atomic::{guard_output_dir, mark_output_dir};
use ift::model::{Pretrained, SaveOptions, Trainable};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SaveDtype {
    F32,
    F16,
    Bf16,
}

impl SaveDtype {
    pub fn dtype(self) -> DType {
        match self {
            SaveDtype::F32 => DType::F32,
            SaveDtype::F16 => DType::F16,
            SaveDtype::Bf16 => DType::BF16,
        }
    }
}

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Hugging Face model directory to read.
    #[arg(long, conflicts_with = "gguf", required_unless_present = "gguf")]
    model: Option<PathBuf>,
    /// GGUF file to read (llama and qwen2 architectures; every tensor type candle reads).
    #[arg(long)]
    gguf: Option<PathBuf>,
    /// Directory to write: a new or empty one, or one an ift command made
    /// (replaced atomically); never the input, inside it or above it.
    #[arg(long)]
    out: PathBuf,
    /// Weight dtype on disk.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: SaveDtype,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    match (&args.model, &args.gguf) {
        (_, Some(gguf)) => convert_gguf(gguf, &args.out, args.dtype.dtype()),
        (Some(model), None) => resave(model, &args.out, args.dtype.dtype()),
        (None, None) => bail!("give --model DIR or --gguf FILE"),
    }
}

/// Converts a GGUF file and says what it held.
pub fn convert_gguf(gguf: &Path, out: &Path, dtype: DType) -> Result<()> {
    guard_output_dir(out, "--out", &[gguf])?;
    let summary = ift::model::gguf::convert_gguf(gguf, out, dtype)?;
    mark_output_dir(out, "ift convert")?;
    let types: Vec<String> = summary
        .types
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    eprintln!(
        "converted {} ({:?}, {} tensors: {}) to {}",
        gguf.display(),
        summary.arch,
        summary.tensors,
        types.join(", "),
        out.display()
    );
    Ok(())
}

fn resave(model: &Path, out: &Path, dtype: DType) -> Result<()> {
    guard_output_dir(out, "--out", &[model])?;
    let pretrained = Pretrained::load(model, &Trainable::None, &Device::Cpu)?;
    let options = SaveOptions {
        dtype,
        companions_from: None,
    };
    pretrained.save(out, &options)?;
    mark_output_dir(out, "ift convert")?;
    eprintln!(
        "saved {} ({} parameters)",
        out.display(),
        pretrained.model.parameters().count()
    );
    Ok(())
}
