//! Checkpoint directories as `--resume` meets them: the first byte picks a
//! file of a real checkpoint (written once by a two-step training run of the
//! tiny fixture model) and how the rest replaces it; then the run directory
//! is searched for the newest intact checkpoint and that one is read. A bad
//! file is an error naming it (or a checkpoint passed over, saying why),
//! never a panic or a huge allocation.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use ift::config::RunConfig;
use ift::train::checkpoint::{newest_intact_checkpoint, read_checkpoint, MANIFEST_FILE};
use ift::train::Observer;
use libfuzzer_sys::fuzz_target;

struct Quiet;
impl Observer for Quiet {}

/// The files of the pristine checkpoint, and the run directory fuzzed.
struct Run {
    dir: PathBuf,
    checkpoint: PathBuf,
    files: Vec<(String, Vec<u8>)>,
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let base = match Path::new("/dev/shm").is_dir() {
            true => PathBuf::from("/dev/shm"),
            false => std::env::temp_dir(),
        };
        let dir = base.join(format!("ift-fuzz-checkpoint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/ift/tests/fixtures");
        let toml = format!(
            "[model]\npath = \"{fx}/models/llama_gqa\"\n[data]\ntrain = \"{fx}/records/tiny_chats.jsonl\"\n\
             [train]\noutput_dir = \"{}\"\nmax_steps = 2\nbatch_size = 2\nmicro_batch_size = 2\nsave_every = 1\n",
            dir.display()
        );
        let config = RunConfig::parse(&toml, "fuzz.toml", &[]).unwrap();
        ift::run::train_from_config(&config, None, &AtomicBool::new(false), &mut Quiet).unwrap();
        let checkpoint = dir.join("checkpoint-1");
        let mut files = Vec::new();
        for e in std::fs::read_dir(&checkpoint).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            files.push((name, std::fs::read(e.path()).unwrap()));
        }
        files.sort();
        Run {
            dir,
            checkpoint,
            files,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let run = run();
    // Restore the pristine checkpoint, then break one file.
    for (name, bytes) in &run.files {
        std::fs::write(run.checkpoint.join(name), bytes).unwrap();
    }
    let (name, _) = &run.files[which as usize % run.files.len()];
    std::fs::write(run.checkpoint.join(name), rest).unwrap();
    // Odd selectors drop the manifest, as an earlier version's checkpoint
    // has none, so the state and optimiser readers see the bytes themselves.
    if which / run.files.len() as u8 % 2 == 1 && name != MANIFEST_FILE {
        std::fs::remove_file(run.checkpoint.join(MANIFEST_FILE)).unwrap();
    }
    match newest_intact_checkpoint(&run.dir) {
        Ok((Some(dir), _)) => {
            read_checkpoint(&dir).expect("an intact checkpoint reads");
        }
        Ok((None, why)) => assert!(!why.is_empty(), "a damaged checkpoint says why"),
        Err(e) => panic!("searching the run directory failed: {e}"),
    }
});
