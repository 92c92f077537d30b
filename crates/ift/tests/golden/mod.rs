//! Reading the golden safetensors fixtures the PyTorch references write:
//! tensors plus the JSON strings in their metadata.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

mod grads;
mod records;
#[allow(unused_imports)] // each test file uses some of them
pub use grads::{nll_backward, nonzero_lora_b, small_lora, trainable_grads};
#[allow(unused_imports)]
pub use records::write_records;

/// `crates/ift/tests/fixtures/<name>`, or `$IFT_TEST_FIXTURES/<name>` when
/// set (a test binary carried to another machine, `scripts/gpu/check.sh`).
pub fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("IFT_TEST_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
    }
    .join(name)
}

pub struct Fixture {
    pub tensors: HashMap<String, Tensor>,
    pub meta: HashMap<String, String>,
}

pub fn read(path: PathBuf) -> Fixture {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    Fixture { tensors, meta }
}

/// Max |t| over every element.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Max |a − b| over every element.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// The Euclidean norm of every element.
pub fn l2(t: &Tensor) -> f32 {
    t.sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar()
        .unwrap()
}
