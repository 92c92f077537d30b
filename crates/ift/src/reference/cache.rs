//! The reference log-probability cache file: one safetensors file per
//! reference model (named by the fingerprint of its weights), holding the
//! summed reference log-probability of every sequence computed so far, keyed
//! by the sequence's content (token ids and loss mask).
//!
//! Keying by content rather than by the data file's bytes is deliberate: an
//! edited data file misses exactly for the records whose tokens changed, a new
//! seed or `batch_size` (new KTO mismatched pairs) computes only what is new,
//! and tokenisation settings need no key of their own because they change the
//! tokens. A checksum over the stored tensors detects a corrupt file.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::data::EncodedExample;
use crate::error::{Error, Result};
use crate::model::write_file_atomically;

/// A sequence's cache key: the first 16 bytes of the SHA-256 of its ids and mask.
pub type SeqKey = [u8; 16];

const FORMAT: &str = "ift-reference-logps-1";

pub fn sequence_key(e: &EncodedExample) -> SeqKey {
    let mut h = Sha256::new();
    for id in &e.input_ids {
        h.update(id.to_le_bytes());
    }
    h.update([0xFF]);
    h.update(e.loss_mask.iter().map(|&m| u8::from(m)).collect::<Vec<_>>());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

fn checksum(keys: &[u8], logps: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(keys);
    h.update(logps);
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads `path`. A missing file is an empty cache; an unreadable, truncated or
/// tampered one is an empty cache plus a warning naming the file and the fault.
pub fn read_cache(path: &Path) -> (HashMap<SeqKey, f32>, Option<String>) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (HashMap::new(), None),
        Err(e) => {
            return (
                HashMap::new(),
                Some(format!(
                    "{}: cannot read the reference cache ({e}); recomputing",
                    path.display()
                )),
            )
        }
    };
    match parse(&bytes) {
        Ok(map) => (map, None),
        Err(why) => (
            HashMap::new(),
            Some(format!(
                "{}: reference cache is corrupt ({why}); recomputing it",
                path.display()
            )),
        ),
    }
}

fn parse(bytes: &[u8]) -> std::result::Result<HashMap<SeqKey, f32>, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format!("not a `{FORMAT}` file"));
    }
    let keys = st.tensor("keys").map_err(|e| e.to_string())?;
    let logps = st.tensor("logps").map_err(|e| e.to_string())?;
    if meta.get("checksum") != Some(&checksum(keys.data(), logps.data())) {
        return Err("checksum mismatch".into());
    }
    let (k, v) = (keys.data(), logps.data());
    if k.len() != 16 * (v.len() / 4) || v.len() % 4 != 0 {
        return Err("keys and values disagree in length".into());
    }
    Ok(k.chunks_exact(16)
        .zip(v.chunks_exact(4))
        .map(|(k, v)| {
            (
                k.try_into().expect("16 bytes"),
                f32::from_le_bytes(v.try_into().expect("4 bytes")),
            )
        })
        .collect())
}

/// Writes the whole cache atomically (a reader never sees a partial file).
pub fn write_cache(path: &Path, map: &HashMap<SeqKey, f32>) -> Result<()> {
    let mut entries: Vec<(&SeqKey, &f32)> = map.iter().collect();
    entries.sort_by_key(|(k, _)| **k);
    let keys: Vec<u8> = entries
        .iter()
        .flat_map(|(k, _)| k.iter().copied())
        .collect();
    let logps: Vec<u8> = entries.iter().flat_map(|(_, v)| v.to_le_bytes()).collect();
    let n = entries.len();
    let views = [
        (
            "keys",
            safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![n, 16], &keys),
        ),
        (
            "logps",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n], &logps),
        ),
    ];
    let mut views_ok = Vec::new();
    for (name, v) in views {
        views_ok.push((
            name,
            v.map_err(|e| Error::Train(format!("reference cache: {e}")))?,
        ));
    }
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("checksum".to_string(), checksum(&keys, &logps)),
    ]);
    let bytes = safetensors::serialize(views_ok, Some(meta))
        .map_err(|e| Error::Train(format!("reference cache: {e}")))?;
    write_file_atomically(path, &bytes)
}

/// Writes `map` into the cache file together with whatever another process
/// added since it was read (runs beside each other share a cache), under a
/// lock on `<file>.lock` so that neither loses the other's entries. On equal
/// keys the values are the same (same model, same sequence).
pub fn write_cache_merged(path: &Path, map: &HashMap<SeqKey, f32>) -> Result<()> {
    let lock_path = path.with_extension("safetensors.lock");
    let _lock = crate::lock::lock_file_blocking(&lock_path)?;
    let (mut merged, _) = read_cache(path);
    merged.extend(map.iter().map(|(k, v)| (*k, *v)));
    write_cache(path, &merged)
}

fn file_fingerprint(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    std::io::copy(&mut file, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(hex(&h.finalize()))
}

/// Hex SHA-256 of a model directory's `config.json` and weight files (names
/// and bytes, in name order): the identity of a reference model, computed
/// without loading it.
pub fn weights_fingerprint(dir: &Path) -> Result<String> {
    if dir.is_file() {
        // A GGUF file used as the model: the file is the identity.
        return file_fingerprint(dir);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == "config.json"
                || (name.ends_with(".safetensors") && name != "optimizer.safetensors")
                || name.ends_with(".safetensors.index.json")
        })
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
        std::io::copy(&mut file, &mut h).map_err(|e| Error::io(f, e))?;
    }
    Ok(hex(&h.finalize()))
}
