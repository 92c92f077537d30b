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
