//! `ift data inspect` end to end on the real binary.

use std::path::Path;
use std::process::Command;

#[test]
fn inspect_highlights_trained_spans_and_reports_the_file() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures");
    let model = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("templates/tokenizer.json", "tokenizer.json"),
        (
            "templates/chatml/tokenizer_config.json",
            "tokenizer_config.json",
        ),
    ] {
        std::fs::copy(fixtures.join(from), model.path().join(to)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(["data", "inspect", "--n", "1", "--model"])
        .arg(model.path())
        .arg("--data")
        .arg(fixtures.join("records/chat.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not a terminal: brackets, not colours. Only the first record is shown.
    assert!(
        stdout.contains("<|im_start|>assistant\n[[Paris.<|im_end|>]]"),
        "{stdout}"
    );
    assert!(!stdout.contains("[[4<|im_end|>]]"), "{stdout}");
    assert!(stdout.contains("records: 2  kept: 2  dropped"), "{stdout}");
    assert!(stdout.contains("p50"), "{stdout}");

    let missing = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args([
            "data",
            "inspect",
            "--model",
            "/nonexistent",
            "--data",
            "x.jsonl",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/tokenizer.json"));
}
