//! `config.json` and safetensors: the first byte picks which file the rest
//! is (with the other one valid), then the model directory is loaded. Bad
//! files are errors, never panics or huge allocations.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::Device;
use ift::model::{LlamaConfig, LlamaForCausalLM, Trainable};
use libfuzzer_sys::fuzz_target;

/// A directory (on tmpfs where there is one) holding the tiny fixture model as one file.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = match std::path::Path::new("/dev/shm").is_dir() {
            true => PathBuf::from("/dev/shm"),
            false => std::env::temp_dir(),
        };
        let dir = base.join(format!("ift-fuzz-model-{}", std::process::id()));
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crates/ift/tests/fixtures/models/llama_gqa"
        );
        let model =
            LlamaForCausalLM::from_pretrained(fixture.as_ref(), &Trainable::None, &Device::Cpu)
                .unwrap();
        model.save_pretrained(&dir, &Default::default()).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let dir = dir();
    let name = match which % 2 {
        0 => "config.json",
        _ => "model.safetensors",
    };
    let path = dir.join(name);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, rest).unwrap();
    if name == "config.json" {
        let _ = LlamaConfig::from_file(&path);
    }
    let _ = LlamaForCausalLM::from_pretrained(dir, &Trainable::None, &Device::Cpu);
    std::fs::write(&path, good).unwrap();
});
