//! `ift bench` (what scripts/bench/run.sh and scripts/gpu/check.sh run) and
//! `--device` in a CPU-only build.

use std::process::Command;

fn ift(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn bench_prints_one_json_line_per_measurement() {
    for (step, dtype) in [
        ("sft", "f32"),
        ("ift", "bf16"),
        ("dpo", "f32"),
        ("forward", "bf16"),
    ] {
        let args = [
            "bench", "32m", step, "--batch", "2", "--seq", "16", "--warmup", "0", "--iters", "1",
            "--dtype", dtype,
        ];
        let (code, out, err) = ift(&args);
        assert_eq!(code, Some(0), "{step} {dtype}: {err}");
        let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(row["step"], step);
        assert_eq!(row["dtype"], dtype);
        assert!(row["tokens_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["flops_per_token"].as_f64().unwrap() > 0.0, "{row}");
    }
}

/// A CPU-only build (a CUDA build can open the device, so it is not built there).
#[cfg(not(feature = "cuda"))]
#[test]
fn asking_for_cuda_in_a_cpu_build_is_a_usage_error_naming_the_flag() {
    let (code, _, err) = ift(&["bench", "32m", "sft", "--device", "cuda:1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--device") && err.contains("`cuda:1`") && err.contains("--features cuda"),
        "{err}"
    );
    let (code, _, err) = ift(&[
        "generate", "--model", "m", "--prompt", "x", "--device", "tpu",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    let (code, _, err) = ift(&["bench", "32m", "sft", "--dtype", "f16"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--dtype") && err.contains("f16"), "{err}");
}

/// Issue 27: the numeric flags of `ift bench`, `ift score`, `ift data
/// inspect` and `ift demo` are checked as they are parsed: exit 2, the flag
/// named, nothing run (the model paths need not exist).
#[test]
fn numeric_flags_out_of_range_are_usage_errors_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 11] = [
        (
            &["bench", "32m", "sft", "--batch", "1"],
            "'--batch <BATCH>': 1 must be at least 2",
        ),
        (
            &["bench", "32m", "sft", "--seq", "0"],
            "'--seq <SEQ>': 0 must be at least 4",
        ),
        (
            &["bench", "32m", "sft", "--iters", "0"],
            "'--iters <ITERS>': 0 must be at least 1",
        ),
        (
            &["bench", "32m", "sft", "--seq", "16", "--prompt", "16"],
            "--prompt 16 must be less than --seq 16",
        ),
        (
            &[
                "score",
                "--model",
                "m",
                "--data",
                "d",
                "--out",
                out,
                "--batch-size",
                "0",
            ],
            "'--batch-size <BATCH_SIZE>': 0 must be at least 1",
        ),
        (
            &[
                "data",
                "inspect",
                "--model",
                "m",
                "--data",
                "d",
                "--max-length",
                "1",
            ],
            "'--max-length <MAX_LENGTH>': 1 must be at least 2",
        ),
        (
            &[
                "data",
                "inspect",
                "--model",
                "m",
                "--data",
                "d",
                "--max-length",
                "-5",
            ],
            "'--max-length <MAX_LENGTH>': `-5` is not a whole number",
        ),
        (
            &["demo", "--out", out, "--steps", "0"],
            "'--steps <STEPS>': 0 must be at least 1",
        ),
        (
            &["demo", "--out", out, "--seeds", "0"],
            "'--seeds <SEEDS>': 0 must be at least 1",
        ),
        (
            &["demo", "--out", out, "--eval-problems", "0"],
            "'--eval-problems <EVAL_PROBLEMS>': 0 must be at least 1",
        ),
        (
            &["demo", "--out", out, "--seed", "18446744073709551615"],
            "--seed 18446744073709551615 + --seeds 3 is past the last seed",
        ),
    ];
    for (args, want) in cases {
        let (code, stdout, err) = ift(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(!tmp.path().join("out").exists(), "{args:?} wrote output");
    }
}
