//! The crash-injection runs: data of each objective's kind, the run config,
//! and the comparison of two finished run directories file by file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CHATS: &str = include_str!("../../../ift/tests/fixtures/records/tiny_chats.jsonl");

const PAIRS: &str = include_str!("../../../ift/tests/fixtures/records/tiny_pairs.jsonl");

const KTO: &str = include_str!("../../../ift/tests/fixtures/records/tiny_kto.jsonl");

/// One run directory: `run.toml`, `data.jsonl`, and the output in `out/`.
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
    pub out: PathBuf,
}

impl Run {
    pub fn new(parent: &Path, objective: &str, which: &str) -> Run {
        let name = format!("{objective}-{which}");
        let dir = parent.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let data = match objective {
            "sft" | "ift" => CHATS,
            "kto" => KTO,
            _ => PAIRS,
        };
        std::fs::write(dir.join("data.jsonl"), data).unwrap();
        let model =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures/models/llama_gqa");
        let steps: u64 = match std::env::var_os("IFT_CRASH_KILLS") {
            Some(_) => 40,
            None => 12,
        };
        // IFT with every source of step-dependent randomness: a λ schedule,
        // noise on λ and sampled predictions.
        let options = match objective {
            "ift" => {
                "lambda_schedule = \"linear\"\nmax_lambda = 0.3\nlambda_warmup_steps = 6\n\
                      lambda_disturb = \"normal\"\ndisturb_std = 0.1\nprediction = \"nucleus\"\n"
            }
            _ => "",
        };
        let config = format!(
            "[model]\npath = {model:?}\n[data]\ntrain = \"data.jsonl\"\neval = \"data.jsonl\"\n\
             [objective]\nkind = \"{objective}\"\n{options}\
             [train]\noutput_dir = \"out\"\nmax_steps = {steps}\nbatch_size = 2\nmicro_batch_size = 1\n\
             lr = 1e-3\noptimizer = \"adamw\"\nwarmup_steps = 2\nsave_every = 1\nkeep_last = 2\neval_every = 3\n"
        );
        std::fs::write(dir.join("run.toml"), config).unwrap();
        let out = dir.join("out");
        Run { name, dir, out }
    }
}

/// Lines of `metrics.jsonl` (0 when it does not exist yet).
pub fn rows(metrics: &Path) -> usize {
    std::fs::read_to_string(metrics).map_or(0, |t| t.lines().count())
}

pub fn has_checkpoint(out: &Path) -> bool {
    std::fs::read_dir(out).is_ok_and(|mut d| {
        d.any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("checkpoint-") || name.starts_with(".checkpoint-")
        })
    })
}

/// Every file of `dir` by name; `trainer_state.json` without its wall-clock
/// seconds, the one figure that may differ.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let mut bytes = std::fs::read(e.path()).unwrap();
        if name == "trainer_state.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v.as_object_mut().unwrap().remove("elapsed_s");
            bytes = v.to_string().into_bytes();
        }
        all.insert(name, bytes);
    }
    all
}

/// [`files`], with the folder of the run whose output is `out` written as
/// `<run>` in `config.toml` (it holds the run's config, data and output).
fn files_in_run(dir: &Path, out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = files(dir);
    if let Some(c) = all.get_mut("config.toml") {
        let run = std::path::absolute(out.parent().unwrap()).unwrap();
        let run = run.display().to_string();
        *c = String::from_utf8_lossy(c)
            .replace(&run, "<run>")
            .into_bytes();
    }
    // The manifest's digest of config.toml depends on the run's folder too,
    // config.toml itself is compared above, normalised.
    if let Some(m) = all.get_mut("manifest.json") {
        let mut v: serde_json::Value = serde_json::from_slice(m).unwrap();
        let files = v["files"].as_object_mut().unwrap();
        // (and trainer_state.json holds timings, compared apart)
        files.remove("config.toml");
        files.remove("trainer_state.json");
        *m = v.to_string().into_bytes();
    }
    all
}

/// Asserts that two finished runs hold the same directories, the same files
/// in `final/` and in every checkpoint left, byte for byte, and the same
/// metrics but for timings; nothing else (no temporaries). Returns the
/// number of files compared.
pub fn compare_runs(a: &Path, b: &Path) -> usize {
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(a), listing(b), "the run directories differ");
    let mut compared = 0;
    for name in listing(a) {
        let (da, db) = (a.join(&name), b.join(&name));
        if da.is_dir() {
            // A resolved config names its run's own (absolute) folder; the
            // two runs live in different ones.
            let (fa, fb) = (files_in_run(&da, a), files_in_run(&db, b));
            assert_eq!(
                fa.keys().collect::<Vec<_>>(),
                fb.keys().collect::<Vec<_>>(),
                "{name}"
            );
            for (file, bytes) in &fa {
                assert!(
                    bytes == &fb[file],
                    "{}: {name}/{file} differs{}",
                    b.display(),
                    match file.ends_with(".toml") || file.ends_with(".json") {
                        true => format!(
                            ":\n{}\n---\n{}",
                            String::from_utf8_lossy(bytes),
                            String::from_utf8_lossy(&fb[file])
                        ),
                        false => String::new(),
                    }
                );
                compared += 1;
            }
        }
    }
    let metrics = |d: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                for k in ["tokens_per_s", "elapsed_s"] {
                    v.as_object_mut().unwrap().remove(k);
                }
                v
            })
            .collect()
    };
    assert_eq!(metrics(a), metrics(b), "metrics differ");
    compared + 1
}
