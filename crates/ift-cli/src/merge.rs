//! `ift merge`: a base model plus a PEFT LoRA adapter → one Hugging Face
//! model directory (`W + scaling · B A`, as PEFT's `merge_and_unload`), which
//! `transformers` and every other tool load without PEFT.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use ift::model::SaveOptions;

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The base Hugging Face model directory the adapter was trained on.
    #[arg(long)]
    model: PathBuf,
    /// The PEFT adapter directory (e.g. a LoRA run's `final/`).
    #[arg(long)]
    adapter: PathBuf,
    /// Directory to write (replaced atomically if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Weight dtype on disk.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: crate::convert::SaveDtype,
}

pub fn run(args: MergeArgs) -> Result<()> {
    let pre =
        ift::adapter::load_merged(&args.model, &args.adapter, &Device::Cpu).with_context(|| {
            format!(
                "merging {} into {}",
                args.adapter.display(),
                args.model.display()
            )
        })?;
    let options = SaveOptions {
        dtype: args.dtype.dtype(),
        ..SaveOptions::default()
    };
    pre.save(&args.out, &options)?;
    eprintln!(
        "merged {} into {} → {}",
        args.adapter.display(),
        args.model.display(),
        args.out.display()
    );
    Ok(())
}
