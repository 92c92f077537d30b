//! GGUF dequantisation (issue 12): every storage type candle reads, against
//! llama.cpp's own Python `gguf` package (fixtures/gguf/quant_types.gguf, made
//! by scripts/reference/make_gguf_fixtures.py), and candle-written files.

mod golden;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use golden::max_abs_diff;
use ift::model::gguf::{dequantize, read_content, GgufError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

#[test]
fn every_type_dequantises_as_the_gguf_package_does() {
    let path = fixture("quant_types.gguf");
    let content = read_content(&path).unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let types = [
        "f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k",
        "q5_k", "q6_k",
    ];
    for name in types {
        let got = dequantize(&path, &mut file, &content, name).unwrap();
        let want = dequantize(&path, &mut file, &content, &format!("{name}.expected")).unwrap();
        assert_eq!(got.dims(), &[2, 256], "{name}");
        let scale = want
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff <= 1e-6 * scale.max(1.0),
            "{name}: max |diff| {diff} (values up to {scale})"
        );
    }
}

#[test]
fn an_unsupported_tensor_type_is_an_error_naming_it() {
    let path = fixture("unsupported.gguf");
    let err = read_content(&path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GgufError::Read { .. }), "{msg}");
    assert!(
        msg.contains("unsupported.gguf") && msg.contains("IQ4_NL"),
        "{msg}"
    );
}

/// candle's own writer and quantiser, read back: the error is what each type's
/// resolution allows (a round trip, not an independent check; that is above).
#[test]
fn candle_quantised_files_read_back_within_each_types_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..512).map(|i| ((i as f32) * 0.37).sin() * 2.0).collect();
    let src = Tensor::from_vec(values, (2, 256), &Device::Cpu).unwrap();
    let cases = [
        (GgmlDType::F32, 0.0),
        (GgmlDType::F16, 2e-3),
        (GgmlDType::BF16, 2e-2),
        (GgmlDType::Q8_0, 2e-2),
        (GgmlDType::Q5_0, 0.15),
        (GgmlDType::Q5_1, 0.15),
        (GgmlDType::Q4_0, 0.3),
        (GgmlDType::Q4_1, 0.3),
        (GgmlDType::Q6K, 0.1),
        (GgmlDType::Q5K, 0.15),
        (GgmlDType::Q4K, 0.3),
        (GgmlDType::Q3K, 0.6),
        (GgmlDType::Q2K, 1.0),
    ];
    for (dtype, tol) in cases {
        let path = dir.path().join(format!("{dtype:?}.gguf"));
        let q = QTensor::quantize(&src, dtype).unwrap();
        let arch = Value::String("fixture".into());
        let mut f = std::fs::File::create(&path).unwrap();
        gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("w", &q)]).unwrap();
        drop(f);
        let content = read_content(&path).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let got = dequantize(&path, &mut file, &content, "w").unwrap();
        let diff = max_abs_diff(&got, &src);
        eprintln!("{dtype:?}: max abs diff {diff}");
        assert!(diff <= tol, "{dtype:?}: max |diff| {diff} > {tol}");
    }
}
