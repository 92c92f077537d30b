//! The GGUF reader and converter: any bytes are read (header, metadata,
//! tensor infos) and, when they read, converted to a Hugging Face directory;
//! a bad file is an error naming it, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::DType;
use ift::model::gguf::{convert_gguf, read_content};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = match std::path::Path::new("/dev/shm").is_dir() {
            true => PathBuf::from("/dev/shm"),
            false => std::env::temp_dir(),
        };
        let dir = base.join(format!("ift-fuzz-gguf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("model.gguf");
    std::fs::write(&path, data).unwrap();
    if read_content(&path).is_ok() {
        let _ = convert_gguf(&path, &dir().join("out"), DType::F32);
    }
});
