//! `ift convert --gguf` and `ift fetch smollm2` through the real binary
//! (issue 12), on what needs no network. The real download and conversion are
//! exercised by `.ci/run` and tests/smollm2_gguf.rs.

use std::path::PathBuf;
use std::process::Command;

fn ift(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn fetch_finds_a_finished_directory_and_does_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("SmolLM2-135M-Instruct");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let d = dir.path().to_str().unwrap();
    for _ in 0..2 {
        let out = ift(&["fetch", "smollm2", "--dir", d]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", model.display())
        );
    }
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing downloaded or written");
}

#[test]
fn convert_names_an_unsupported_tensor_type_and_writes_nothing() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ift/tests/fixtures/gguf/unsupported.gguf");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = ift(&[
        "convert",
        "--gguf",
        fixture.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsupported.gguf") && stderr.contains("IQ4_NL"),
        "{stderr}"
    );
    assert!(!out_dir.exists());
}

#[test]
fn convert_wants_exactly_one_source() {
    let out = ift(&["convert", "--out", "x"]);
    assert!(!out.status.success());
    let out = ift(&["convert", "--model", "a", "--gguf", "b", "--out", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}
