//! `ift convert`: re-save a model directory (e.g. to another dtype). What a
//! user runs to check that `ift` writes checkpoints `transformers` loads.

use std::path::PathBuf;

use anyhow::Result;
use candle_core::{DType, Device};
use ift::model::{Pretrained, SaveOptions, Trainable};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SaveDtype {
    F32,
    F16,
    Bf16,
}

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Hugging Face model directory to read.
    #[arg(long)]
    model: PathBuf,
    /// Directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Weight dtype on disk.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: SaveDtype,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let pretrained = Pretrained::load(&args.model, &Trainable::None, &Device::Cpu)?;
    let dtype = match args.dtype {
        SaveDtype::F32 => DType::F32,
        SaveDtype::F16 => DType::F16,
        SaveDtype::Bf16 => DType::BF16,
    };
    let options = SaveOptions {
        dtype,
        companions_from: None,
    };
    pretrained.save(&args.out, &options)?;
    eprintln!(
        "saved {} ({} parameters)",
        args.out.display(),
        pretrained.model.parameters().count()
    );
    Ok(())
}
