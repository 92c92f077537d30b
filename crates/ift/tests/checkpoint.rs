//! Hugging Face checkpoints in and out: round trips, both `config.json`
//! generations, atomic writes, and clear errors on bad input.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use ift::model::{write_atomically, LlamaConfig, LlamaForCausalLM, SaveOptions, Trainable};
use ift::Error;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(dir: &Path) -> LlamaForCausalLM {
    LlamaForCausalLM::from_pretrained(dir, &Trainable::None, &Device::Cpu).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn assert_same_weights(a: &LlamaForCausalLM, b: &LlamaForCausalLM) {
    let (a, b) = (a.parameters().named(), b.parameters().named());
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert!(bits(ta) == bits(tb), "{na} differs after the round trip");
    }
}

#[test]
fn round_trip_is_bit_identical_with_hf_names() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, dtype) in [
        ("llama_gqa", DType::F32),
        ("qwen2_tied", DType::BF16),
        ("llama3_rope", DType::F16),
    ] {
        let src = fixture("models").join(name);
        let first = load(&src);
        let out = tmp.path().join(name);
        let opts = SaveOptions {
            dtype,
            companions_from: Some(src.clone()),
        };
        first.save_pretrained(&out, &opts).unwrap();
        let second = load(&out);
        assert_same_weights(&first, &second);
        assert_eq!(first.config, second.config);
        // HF names, one file, no duplicated tied head.
        let names: Vec<String> =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu)
                .unwrap()
                .into_keys()
                .collect();
        assert!(names
            .iter()
            .all(|n| n.starts_with("model.") || n == "lm_head.weight"));
        assert_eq!(
            names.contains(&"lm_head.weight".to_string()),
            !first.config.tie_word_embeddings
        );
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.join(f).is_file(), "{name}: {f} not copied");
        }
    }
}

#[test]
fn transformers_4x_and_5x_configs_resolve_the_same() {
    let v4 = LlamaConfig::from_file(&fixture("configs/llama3_v4_style.json")).unwrap();
    let v5 = LlamaConfig::from_file(&fixture("models/llama3_rope/config.json")).unwrap();
    assert_eq!(v4, v5);
    assert!(matches!(
        v5.rope_scaling,
        ift::model::RopeScaling::Llama3 { .. }
    ));
}

#[test]
fn failed_save_keeps_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoint-1");
    load(&fixture("models/qwen2_tied"))
        .save_pretrained(&dir, &SaveOptions::default())
        .unwrap();
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let res = write_atomically(&dir, |tmp| {
        std::fs::write(tmp.join("model.safetensors"), b"partial").unwrap();
        Err(Error::Tokenizer {
            dir: tmp.to_path_buf(),
            message: "simulated crash".into(),
        })
    });
    assert!(res.is_err());
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    let leftovers = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(leftovers, 1, "the temporary directory must be cleaned up");
}

fn load_err(dir: &Path) -> String {
    match LlamaForCausalLM::from_pretrained(dir, &Trainable::None, &Device::Cpu) {
        Ok(_) => panic!("{} loaded but should not have", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_safetensors_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("models/qwen2_tied"), tmp.path());
    let path = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("model.safetensors") && msg.contains("not a valid safetensors"),
        "{msg}"
    );
}

fn edit_config(edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("models/qwen2_tied"), tmp.path());
    let path = tmp.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
    tmp
}

#[test]
fn config_errors_name_the_field() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|v| {
                v["hidden_size"] = 65.into();
                v.as_object_mut().unwrap().remove("head_dim");
            }),
            "`hidden_size`: 65 is not divisible by num_attention_heads = 4",
        ),
        (
            Box::new(|v| v["architectures"] = serde_json::json!(["GPT2LMHeadModel"])),
            "`GPT2LMHeadModel` is not supported",
        ),
        (
            Box::new(|v| {
                v["rope_parameters"] = serde_json::json!({"rope_type": "yarn", "rope_theta": 1e4})
            }),
            "rope type `yarn` is not supported",
        ),
        (
            Box::new(|v| v["num_key_value_heads"] = 3.into()),
            "`num_key_value_heads`: 3 does not divide",
        ),
    ];
    for (edit, want) in cases {
        let tmp = edit_config(edit);
        let msg = load_err(tmp.path());
        assert!(msg.contains("config.json") && msg.contains(want), "{msg}");
    }
}

#[test]
fn shape_mismatch_and_missing_tensor_name_the_tensor() {
    // A smaller intermediate size than the weights have: a shape mismatch.
    let tmp = edit_config(|v| v["intermediate_size"] = 96.into());
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("model.layers.0.mlp.gate_proj.weight")
            && msg.contains("[128, 64]")
            && msg.contains("[96, 64]"),
        "{msg}"
    );
    // One more layer than the checkpoint has: a missing tensor.
    let tmp = edit_config(|v| v["num_hidden_layers"] = 3.into());
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("missing tensor `model.layers.2.self_attn.q_proj.weight`"),
        "{msg}"
    );
    // Found by fuzz/fuzz_targets/model_files.rs (fuzz/regressions/model_files/):
    // a huge layer count aborted the process, reserving 12 TB for the layer
    // list before any tensor was read. Now the first missing layer is the error.
    let tmp = edit_config(|v| v["num_hidden_layers"] = 22_222_222_222u64.into());
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("missing tensor `model.layers.2.self_attn.q_proj.weight`"),
        "{msg}"
    );
}

#[test]
fn missing_tokenizer_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixture("models/qwen2_tied"), tmp.path());
    std::fs::remove_file(tmp.path().join("tokenizer.json")).unwrap();
    let err = ift::model::Pretrained::load(tmp.path(), &Trainable::None, &Device::Cpu)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("not found"),
        "{msg}"
    );
}

#[test]
fn tokenizer_beyond_the_vocabulary_is_an_error() {
    // llama_gqa's tokenizer has 384 ids; shrink the model's vocabulary below that.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("models/qwen2_tied");
    copy_dir(&src, tmp.path());
    std::fs::copy(
        fixture("models/llama_gqa/tokenizer.json"),
        tmp.path().join("tokenizer.json"),
    )
    .unwrap();
    let path = tmp.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["vocab_size"] = 380.into();
    std::fs::write(&path, v.to_string()).unwrap();
    // Reload with a consistent checkpoint: cut the embedding rows to match.
    let model = load(&src);
    let mut tensors = std::collections::HashMap::new();
    for (n, t) in model.parameters().named() {
        let t = if n == "model.embed_tokens.weight" {
            t.narrow(0, 0, 380).unwrap()
        } else {
            t.clone()
        };
        tensors.insert(n.clone(), t);
    }
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let err = ift::model::Pretrained::load(tmp.path(), &Trainable::None, &Device::Cpu)
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("ids up to 383") && msg.contains("vocab_size is 380"),
        "{msg}"
    );
}
