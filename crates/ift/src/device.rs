//! Where a run or a command computes: `train.device` and `--device`, written
//! `"cpu"` (default), `"cuda"` (GPU 0) or `"cuda:N"`, as PyTorch names
//! devices. CUDA needs a build with the `cuda` feature
//! (`scripts/gpu/build.sh`); asking for it in a CPU-only build is a usage
//! error that says so, never a panic.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A device by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA GPU by ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// Whether this build can open CUDA devices.
    pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

    /// Opens the device (for CUDA: its context, cuBLAS handle and stream).
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(_) if !Self::CUDA_BUILT => Err(Error::Usage(format!(
                "`{self}` needs a CUDA build of ift: build it with `--features cuda` \
                 (scripts/gpu/build.sh does)"
            ))),
            DeviceSpec::Cuda(n) => Device::new_cuda(n)
                .map_err(|e| Error::Usage(format!("`{self}` cannot be opened: {e}"))),
        }
    }
}

/// Whether f32 matmuls on CUDA devices may use TF32 (`train.tf32`); a no-op
/// in a CPU-only build.
pub fn allow_tf32(on: bool) {
    #[cfg(feature = "cuda")]
    candle_core::cuda_backend::set_gemm_reduced_precision_f32(on);
    #[cfg(not(feature = "cuda"))]
    let _ = on;
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not a device; use \"cpu\", \"cuda\" or \"cuda:N\"");
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map(DeviceSpec::Cuda).map_err(|_| bad())
                }
                _ => Err(bad()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
            assert_eq!(spec.to_string().parse::<DeviceSpec>().unwrap(), spec);
        }
        for bad in [
            "gpu",
            "cuda:",
            "cuda:x",
            "cuda:-1",
            "CPU",
            "cuda:99999999999999999999",
        ] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(e.contains(bad) && e.contains("cuda:N"), "{e}");
        }
    }

    #[test]
    fn cpu_opens() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(
            e.contains("--features cuda") && e.contains("`cuda:0`"),
            "{e}"
        );
    }
}
