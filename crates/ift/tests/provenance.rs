//! Issue 27, item 7: an adapter records the base model it was trained on,
//! and attaching it to another base whose shapes happen to fit is refused,
//! naming both; a reference model with another tokenizer is refused.

use std::path::PathBuf;

use candle_core::Device;
use ift::adapter::{attach_fresh, load_merged, LoraConfig, TargetModule, BASE_FILE};
use ift::model::{LlamaForCausalLM, Pretrained, SaveOptions, Trainable};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn an_adapter_is_refused_on_another_base_with_the_same_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let base_dir = fixture("models/llama_gqa");
    let mut model =
        LlamaForCausalLM::from_pretrained(&base_dir, &Trainable::None, &Device::Cpu).unwrap();
    let lora = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        target_modules: TargetModule::ALL.to_vec(),
        use_rslora: false,
    };
    attach_fresh(&mut model, &lora, 1).unwrap();
    let adapter = tmp.path().join("adapter");
    let options = SaveOptions {
        companions_from: Some(base_dir.clone()),
        ..SaveOptions::default()
    };
    model.save_trained(&adapter, &options).unwrap();
    assert!(adapter.join(BASE_FILE).is_file());

    // Its own base, and the same base re-saved in bf16: accepted.
    load_merged(&base_dir, &adapter, &Device::Cpu).unwrap();
    let bf16 = tmp.path().join("bf16");
    let pre = Pretrained::load(&base_dir, &Trainable::None, &Device::Cpu).unwrap();
    let bf16_options = SaveOptions {
        dtype: candle_core::DType::BF16,
        ..SaveOptions::default()
    };
    pre.save(&bf16, &bf16_options).unwrap();
    load_merged(&bf16, &adapter, &Device::Cpu).unwrap();

    // Another model of the same config (other weights): refused, both named.
    let other_dir = tmp.path().join("other");
    let other = LlamaForCausalLM::random(
        pre.model.config.clone(),
        0.02,
        7,
        &Trainable::None,
        &Device::Cpu,
    )
    .unwrap();
    let other = Pretrained {
        model: other,
        ..pre
    };
    other.save(&other_dir, &SaveOptions::default()).unwrap();
    let err = load_merged(&other_dir, &adapter, &Device::Cpu)
        .err()
        .expect("another base is refused")
        .to_string();
    assert!(
        err.contains(&adapter.display().to_string())
            && err.contains(&other_dir.display().to_string())
            && err.contains("embedding sample"),
        "{err}"
    );
}

#[test]
fn a_reference_with_another_tokenizer_is_refused() {
    let policy = fixture("models/llama_gqa");
    let tok = ift::tokenizer::HfTokenizer::from_dir(&policy).unwrap();
    ift::model::check_same_tokenizer(&tok, &policy, "the reference model").unwrap();
    let err = ift::model::check_same_tokenizer(
        &tok,
        &fixture("models/qwen2_tied"),
        "the reference model",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("the reference model's tokenizer is not the policy's"),
        "{err}"
    );
}
