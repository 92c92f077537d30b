//! `ift merge`: a base model plus a PEFT LoRA adapter → one Hugging Face
//! model directory (`W + scaling · B A`, as PEFT's `merge_and_unload`), which
//! `transformers` and every other tool load without PEFT.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use ift::atomic::{guard_output_dir, mark_output_dir};
use ift::model::SaveOptions;

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The base Hugging Face model directory the adapter was trained on.
    #[arg(long)]
    model: PathBuf,
    /// The PEFT adapter directory (e.g. a LoRA run's `final/`).
    #[arg(long)]
    adapter: PathBuf,
    /// Directory to write: a new or empty one, or one an ift command made
    /// (replaced atomically); never an input, inside one or above one.
    #[arg(long)]
    out: PathBuf,
    /// Weight dtype on disk.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: crate::convert::SaveDtype,
}

pub fn run(args: MergeArgs) -> Result<()> {
    guard_output_dir(&args.out, "--out", &[&args.model, &args.adapter])?;
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
    mark_output_dir(&args.out, "ift merge")?;
    eprintln!(
        "merged {} into {} → {}",
        args.adapter.display(),
        args.model.display(),
        args.out.display()
    );
    Ok(())
}
