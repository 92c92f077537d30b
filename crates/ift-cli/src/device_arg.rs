//! `--device`, shared by every command that runs a model.

use anyhow::{Context, Result};
use candle_core::Device;
use ift::device::DeviceSpec;

#[derive(clap::Args)]
pub struct DeviceArg {
    /// Compute device: cpu, cuda (GPU 0) or cuda:N; CUDA needs a build with
    /// `--features cuda`.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    pub device: DeviceSpec,
}

impl DeviceArg {
    /// The opened device; an error names `--device`.
    pub fn open(&self) -> Result<Device> {
        self.device.open().context("--device")
    }
}
