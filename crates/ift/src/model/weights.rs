//! Reading Hugging Face safetensors checkpoints: one `model.safetensors` or
//! the shards listed in `model.safetensors.index.json`, in f32, f16 or bf16,
//! always converted to f32 (the CPU computes in f32).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The file name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The file name of a sharded checkpoint's index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Deserialize)]
struct Index {
    weight_map: HashMap<String, String>,
}

/// Every tensor of a checkpoint directory, by Hugging Face name, in f32.
pub struct CheckpointTensors {
    dir: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl CheckpointTensors {
    /// Reads all safetensors files of `dir` onto `device`.
    pub fn read(dir: &Path, device: &Device) -> Result<Self> {
        let files = shard_files(dir)?;
        let mut tensors = HashMap::new();
        for file in files {
            read_file(&file, device, &mut tensors)?;
        }
        Ok(CheckpointTensors {
            dir: dir.to_path_buf(),
            tensors,
        })
    }

    /// Tensors already in memory (f32), named as from `origin` in errors.
    pub fn from_map(origin: &Path, tensors: HashMap<String, Tensor>) -> Self {
        CheckpointTensors {
            dir: origin.to_path_buf(),
            tensors,
        }
    }

    /// Takes tensor `name`, checking it has `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::MissingTensor {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
            })?;
        if t.dims() != shape {
            return Err(Error::ShapeMismatch {
                dir: self.dir.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        Ok(t)
    }

    /// Drops tensor `name` if present (e.g. a redundant tied `lm_head`).
    pub fn discard(&mut self, name: &str) {
        self.tensors.remove(name);
    }

    /// Names of tensors nobody took, sorted.
    pub fn leftover(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        names
    }
}

/// The safetensors files of a checkpoint directory.
fn shard_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let parsed: Index = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: index.clone(),
            source,
        })?;
        let mut files: Vec<String> = parsed.weight_map.into_values().collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(Error::io(
        &single,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no {SINGLE_FILE} or {INDEX_FILE} in this directory"),
        ),
    ))
}

fn read_file(path: &Path, device: &Device, out: &mut HashMap<String, Tensor>) -> Result<()> {
    let bad = |message: String| Error::Safetensors {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and dropped before this function returns;
    // every tensor is copied out of it.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let st = safetensors::SafeTensors::deserialize(&mmap).map_err(|e| bad(e.to_string()))?;
    for (name, view) in st.tensors() {
        let t = view
            .load(device)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let t = match t.dtype() {
            DType::F32 => t,
            DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )))
            }
        };
        out.insert(name, t);
    }
    Ok(())
}
