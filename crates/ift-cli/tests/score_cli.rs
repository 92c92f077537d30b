//! `ift score` end to end, through the real binary, against the
//! `transformers` log-probabilities in `*.score.jsonl` (written by
//! `scripts/reference/make_model_fixtures.py`).

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures/models")
}

fn ift(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `ift score` (asserting it succeeds) and returns the output rows.
fn score(
    model: &std::path::Path,
    data: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let mut args = vec![
        "score",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let res = ift(&args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn score_matches_transformers() {
    for name in ["llama_gqa", "llama3_rope", "qwen2_tied"] {
        let tmp = tempfile::tempdir().unwrap();
        let reference =
            std::fs::read_to_string(fixtures().join(format!("{name}.score.jsonl"))).unwrap();
        let rows: Vec<serde_json::Value> = reference
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let data = tmp.path().join("data.jsonl");
        let lines: Vec<String> = rows
            .iter()
            .map(|r| serde_json::json!({"text": r["text"]}).to_string())
            .collect();
        std::fs::write(&data, lines.join("\n")).unwrap();
        let out = tmp.path().join("scores.jsonl");
        let model = fixtures().join(name);
        let got = score(&model, &data, &out, &["--batch-size", "3"]);
        assert_eq!(got.len(), rows.len());
        for (g, want) in got.iter().zip(&rows) {
            assert_eq!(g["tokens"], want["tokens"], "{name}: {}", want["text"]);
            let (g, w) = (
                g["logprob_sum"].as_f64().unwrap(),
                want["logprob_sum"].as_f64().unwrap(),
            );
            assert!(
                (g - w).abs() < 1e-3 * w.abs().max(1.0),
                "{name}: {} vs {}",
                g,
                w
            );
        }
    }
}

#[test]
fn bad_record_names_file_and_line_and_keeps_earlier_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    std::fs::write(&data, "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n").unwrap();
    let out = tmp.path().join("scores.jsonl");
    std::fs::write(&out, "earlier\n").unwrap();
    let model = fixtures().join("qwen2_tied");
    let res = ift(&[
        "score",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("data.jsonl:2") && err.contains("`text`"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "earlier\n");
}

#[test]
fn convert_round_trips_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("llama_gqa");
    let out = tmp.path().join("resaved");
    let res = ift(&[
        "convert",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
}

/// Chat-style records score exactly their answer tokens (with the model's
/// template): the same exchange written as Alpaca, chat messages, ShareGPT
/// or prompt/completion gives the same score.
#[test]
fn equivalent_record_formats_score_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    let lines = [
        r#"{"instruction": "Name a color.", "input": "", "output": "Blue is a color."}"#,
        r#"{"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue is a color."}]}"#,
        r#"{"conversations": [{"from": "human", "value": "Name a color."}, {"from": "gpt", "value": "Blue is a color."}]}"#,
        r#"{"prompt": [{"role": "user", "content": "Name a color."}], "completion": [{"role": "assistant", "content": "Blue is a color."}]}"#,
        r#"{"text": "Name a color. Blue is a color."}"#,
    ];
    std::fs::write(&data, lines.join("\n")).unwrap();
    let out = tmp.path().join("scores.jsonl");
    let model = fixtures().join("qwen2_tied");
    let got = score(&model, &data, &out, &[]);
    for g in &got[1..4] {
        assert_eq!(
            g, &got[0],
            "every chat form of the exchange scores the same"
        );
    }
    let (answer, text) = (
        got[0]["tokens"].as_u64().unwrap(),
        got[4]["tokens"].as_u64().unwrap(),
    );
    assert!(
        answer > 0 && answer < text + 10,
        "answer tokens {answer}, whole text {text}"
    );
    assert_ne!(got[0]["logprob_sum"], got[4]["logprob_sum"]);
}
