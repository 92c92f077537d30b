//! Typed access to GGUF metadata; each error names the file and the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;

use crate::error::GgufError;

/// The metadata of one GGUF file, with the file's path for error messages.
pub struct Metadata<'a> {
    pub path: PathBuf,
    pub values: &'a HashMap<String, Value>,
}

impl<'a> Metadata<'a> {
    pub fn new(path: &Path, values: &'a HashMap<String, Value>) -> Self {
        Metadata {
            path: path.to_path_buf(),
            values,
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.values.get(key)
    }

    pub fn require(&self, key: &str) -> Result<&'a Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    pub fn bad(&self, key: &str, message: impl std::fmt::Display) -> GgufError {
        GgufError::BadKey {
            path: self.path.clone(),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    pub fn string(&self, key: &str) -> Result<&'a str, GgufError> {
        let v = self.require(key)?;
        v.to_string()
            .map(|s| s.as_str())
            .map_err(|e| self.bad(key, e))
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>, GgufError> {
        self.get(key).map(|_| self.string(key)).transpose()
    }

    /// Any integer type, as GGUF writers differ (u32, i32, u64).
    pub fn usize(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.require(key)?;
        let n = match v {
            Value::U8(x) => *x as i64,
            Value::I8(x) => *x as i64,
            Value::U16(x) => *x as i64,
            Value::I16(x) => *x as i64,
            Value::U32(x) => *x as i64,
            Value::I32(x) => *x as i64,
            Value::U64(x) => *x as i64,
            Value::I64(x) => *x,
            other => return Err(self.bad(key, format!("expected an integer, found {other:?}"))),
        };
        usize::try_from(n).map_err(|_| self.bad(key, format!("negative value {n}")))
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, GgufError> {
        self.get(key).map(|_| self.usize(key)).transpose()
    }

    /// A float as the shortest decimal of its stored precision (an f32
    /// `1e-5` becomes `1e-5`, not `9.999999747378752e-6`).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(format!("{x}").parse().expect("f32 prints as f64"))),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(other) => Err(self.bad(key, format!("expected a float, found {other:?}"))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.bad(key, format!("expected a bool, found {other:?}"))),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a Vec<Value>, GgufError> {
        self.require(key)?.to_vec().map_err(|e| self.bad(key, e))
    }

    pub fn strings(&self, key: &str) -> Result<Vec<&'a str>, GgufError> {
        self.array(key)?
            .iter()
            .map(|v| {
                v.to_string()
                    .map(|s| s.as_str())
                    .map_err(|e| self.bad(key, e))
            })
            .collect()
    }

    pub fn opt_ints(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        let Some(_) = self.get(key) else {
            return Ok(None);
        };
        self.array(key)?
            .iter()
            .map(|v| match v {
                Value::I32(x) => Ok(*x as i64),
                Value::U32(x) => Ok(*x as i64),
                Value::I64(x) => Ok(*x),
                Value::U8(x) => Ok(*x as i64),
                Value::I8(x) => Ok(*x as i64),
                other => Err(self.bad(key, format!("expected integers, found {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
