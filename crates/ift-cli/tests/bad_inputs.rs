//! Issue 13: the bad-input catalogue. Each row breaks one thing of a good
//! `ift train` set-up (config, data, model or tokenizer file, a checkpoint,
//! or the command line of another command) and asserts the exact message
//! and exit code of the real binary. `docs/errors.md` is
//! generated from this table (`IFT_BLESS=1 cargo test -p ift-cli --test
//! bad_inputs` rewrites it) and checked against it.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "bad_inputs/cases.rs"]
mod cases;

use cases::{Case, Setup};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A good set-up in `dir`: a copy of the tiny fixture model, four chats, and
/// a config training on them into `dir/out`.
fn good(dir: &Path) -> Setup {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let fixture = root().join("crates/ift/tests/fixtures/models/llama_gqa");
    for e in std::fs::read_dir(fixture).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    let data = dir.join("data.jsonl");
    std::fs::write(&data, cases::CHATS).unwrap();
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "[model]\npath = \"model\"\n[data]\ntrain = \"data.jsonl\"\n[train]\noutput_dir = \"out\"\nmax_steps = 2\nbatch_size = 2\nmicro_batch_size = 2\n",
    )
    .unwrap();
    Setup {
        dir: dir.to_path_buf(),
        args: vec!["train".into(), "--config".into(), "run.toml".into()],
    }
}

/// The last `error:` line of a run's stderr, with the temporary directory as `{tmp}`.
fn run(setup: &Setup) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(&setup.args)
        .current_dir(&setup.dir)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or("(no error line)")
        .trim_start_matches("error: ")
        .replace(&setup.dir.display().to_string(), "{tmp}");
    (out.status.code(), line)
}

#[test]
fn every_bad_input_gets_its_exact_message_and_exit_code() {
    let all = cases::all();
    assert!(all.len() >= 30, "the catalogue has {} rows", all.len());
    let mut wrong = Vec::new();
    for case in &all {
        let tmp = tempfile::tempdir().unwrap();
        let mut setup = good(tmp.path());
        (case.breaks)(&mut setup);
        let out = tmp.path().join("out");
        let trained = |out: &Path| out.join("final").exists() || out.join("checkpoint-2").exists();
        // Rows about resuming or replacing a run start from one.
        let trained_before = trained(&out);
        let (code, message) = run(&setup);
        if code != Some(case.code) || message != case.message {
            wrong.push(format!(
                "{}: got exit {code:?}\n    {message:?}\n  expected exit {}\n    {:?}",
                case.name, case.code, case.message
            ));
        }
        if case.code != 0 && !trained_before && trained(&out) {
            wrong.push(format!("{}: a failed run trained", case.name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn docs_errors_md_is_the_catalogue() {
    let path = root().join("docs/errors.md");
    let text = markdown(&cases::all());
    if std::env::var_os("IFT_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "docs/errors.md differs from the catalogue in tests/bad_inputs; rerun with IFT_BLESS=1"
    );
}

/// The exit codes of docs/errors.md are the ones `ift --help` shows.
#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let codes: Vec<&str> = cases::HEADER
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(" |").next())
        .filter(|c| c.parse::<u8>().is_ok())
        .collect();
    assert_eq!(codes, ["0", "1", "2", "3", "4", "130"]);
    for code in codes {
        let listed = help
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{code} ")));
        assert!(listed, "exit code {code} missing from --help:\n{help}");
    }
}

fn markdown(all: &[Case]) -> String {
    let mut s = String::from(cases::HEADER);
    s.push_str("| input | exit | message |\n|---|---|---|\n");
    for c in all {
        let message = c.message.replace('|', "\\|");
        s.push_str(&format!("| {} | {} | `` {message} `` |\n", c.name, c.code));
    }
    s
}
