//! `ift merge` and `--adapter` end to end (issue 14), on the adapter peft
//! wrote (`make_lora_fixtures.py`): the merged directory has peft's
//! `merge_and_unload` logits, `ift score --adapter` equals scoring the merged
//! directory, and a missing adapter is an error naming the file.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device};
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ift/tests/fixtures")
}

fn ift(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let res = ift(args);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn merged_directory_has_peft_merged_logits_and_scores_like_the_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let base = fixtures().join("models/llama_gqa");
    let adapter = fixtures().join("lora/llama_gqa_all");
    let merged = tmp.path().join("merged");
    ok(&[
        "merge",
        "--model",
        s(&base),
        "--adapter",
        s(&adapter),
        "--out",
        s(&merged),
    ]);

    let fx = candle_core::safetensors::load(
        fixtures().join("lora/llama_gqa_all.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let batch = candle_core::safetensors::load(
        fixtures().join("models/llama_gqa.reference.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ids = batch["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = batch["attention_mask"].to_dtype(DType::F32).unwrap();
    let model = LlamaForCausalLM::from_pretrained(&merged, &Trainable::None, &Device::Cpu).unwrap();
    let logits = model.forward(ModelInput::Ids(&ids), &mask).unwrap();
    let d: f32 = (logits - &fx["merged_logits"])
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(&mask.unsqueeze(2).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(
        d < 1e-4,
        "merged logits differ from peft's merge_and_unload by {d}"
    );

    let data = tmp.path().join("texts.jsonl");
    std::fs::write(&data, "{\"text\": \"Give three tips for staying healthy.\"}\n{\"text\": \"The quick brown fox.\"}\n").unwrap();
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    ok(&[
        "score",
        "--model",
        s(&base),
        "--adapter",
        s(&adapter),
        "--data",
        s(&data),
        "--out",
        s(&a),
    ]);
    ok(&[
        "score",
        "--model",
        s(&merged),
        "--data",
        s(&data),
        "--out",
        s(&b),
    ]);
    let rows = |p: &Path| -> Vec<f64> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["logprob_sum"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let plain = tmp.path().join("c.jsonl");
    ok(&[
        "score",
        "--model",
        s(&base),
        "--data",
        s(&data),
        "--out",
        s(&plain),
    ]);
    for ((x, y), z) in rows(&a).iter().zip(rows(&b)).zip(rows(&plain)) {
        assert!((x - y).abs() < 1e-3, "--adapter {x} vs merged {y}");
        assert!(
            (x - z).abs() > 1e-2,
            "the adapter changed nothing ({x} vs base {z})"
        );
    }
}

#[test]
fn a_missing_adapter_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let base = fixtures().join("models/llama_gqa");
    // An empty adapter directory beside --out (an --out inside an input is refused first).
    let adapter = tmp.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    let res = ift(&[
        "merge",
        "--model",
        s(&base),
        "--adapter",
        s(&adapter),
        "--out",
        s(&tmp.path().join("m")),
    ]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("adapter_config.json"), "{err}");
    assert!(!tmp.path().join("m").exists());
}
