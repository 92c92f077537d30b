//! The model against the PyTorch/`transformers` reference written by
//! `scripts/reference/make_model_fixtures.py` (versions in each fixture's
//! metadata): logits and loss to 1e-4 absolute, every parameter gradient to
//! 1e-3 relative or 1e-5 absolute.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use ift::loss::{masked_mean, token_logprobs};
use ift::model::{LlamaForCausalLM, ModelInput, Trainable};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

struct Reference {
    input_ids: Tensor,
    attention_mask: Tensor,
    tensors: std::collections::HashMap<String, Tensor>,
}

fn reference(name: &str) -> Reference {
    let path = fixtures().join(format!("{name}.reference.safetensors"));
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    Reference {
        input_ids: tensors["input_ids"].to_dtype(DType::U32).unwrap(),
        attention_mask: tensors["attention_mask"].to_dtype(DType::F32).unwrap(),
        tensors,
    }
}

/// transformers' causal-LM loss: mean next-token NLL over non-padding labels.
fn mean_nll(model: &LlamaForCausalLM, r: &Reference) -> (Tensor, Tensor) {
    let logits = model
        .forward(ModelInput::Ids(&r.input_ids), &r.attention_mask)
        .unwrap();
    let logp = token_logprobs(&logits, &r.input_ids).unwrap();
    let t = r.attention_mask.dim(1).unwrap();
    let mask = r.attention_mask.narrow(1, 1, t - 1).unwrap();
    (logits, masked_mean(&logp.neg().unwrap(), &mask).unwrap())
}

fn max_abs_diff_where(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().broadcast_mul(mask).unwrap();
    d.flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check(name: &str) {
    let dir = fixtures().join(name);
    let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::All, &Device::Cpu).unwrap();
    let r = reference(name);
    let (logits, loss) = mean_nll(&model, &r);

    // Only real-token positions: padded query rows are not part of the loss
    // and transformers lets them attend differently.
    let row_mask = r.attention_mask.unsqueeze(2).unwrap();
    let diff = max_abs_diff_where(&logits, &r.tensors["logits"], &row_mask);
    assert!(diff < 1e-4, "{name}: max logit difference {diff}");

    let want = r.tensors["loss"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0];
    let got = loss.to_scalar::<f32>().unwrap();
    assert!(
        (got - want).abs() < 1e-4,
        "{name}: loss {got} vs reference {want}"
    );

    let grads = loss.backward().unwrap();
    let vars = model.parameters().vars();
    let expected: Vec<&String> = r
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad."))
        .collect();
    assert_eq!(
        vars.len(),
        expected.len(),
        "{name}: parameter count differs from reference"
    );
    for (pname, var) in vars {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
        let want = &r.tensors[&format!("grad.{pname}")];
        let err = (g - want).unwrap().abs().unwrap();
        let tol = (want.abs().unwrap() * 1e-3)
            .unwrap()
            .clamp(1e-5f32, f32::MAX)
            .unwrap();
        let bad = err
            .gt(&tol)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap();
        let bad = bad.to_scalar::<f32>().unwrap();
        let worst = err
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(
            bad, 0.0,
            "{name}: gradient of {pname}: {bad} entries out of tolerance (worst {worst})"
        );
    }
}

#[test]
fn llama_gqa_untied_sharded_f32_matches_transformers() {
    check("llama_gqa");
}

#[test]
fn llama3_rope_scaling_tied_f16_matches_transformers() {
    check("llama3_rope");
}

#[test]
fn qwen2_bias_tied_padded_vocab_bf16_matches_transformers() {
    check("qwen2_tied");
}

/// Every trainable parameter must receive a finite, non-zero gradient: a
/// fused candle-nn op without backward would silently leave some at none.
#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    for name in ["llama_gqa", "qwen2_tied"] {
        let dir = fixtures().join(name);
        let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::All, &Device::Cpu).unwrap();
        let r = reference(name);
        let (_, loss) = mean_nll(&model, &r);
        let grads = loss.backward().unwrap();
        for (pname, var) in model.parameters().vars() {
            let g = grads
                .get(var)
                .unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let v: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                v.iter().all(|x| x.is_finite()),
                "{name}: {pname} has a non-finite gradient"
            );
            assert!(
                v.iter().any(|&x| x != 0.0),
                "{name}: {pname} has an all-zero gradient"
            );
        }
    }
}

/// A sequence scored alone and inside a right-padded batch gives the same
/// log-probabilities.
#[test]
fn right_padding_does_not_change_logprobs() {
    let dir = fixtures().join("llama_gqa");
    let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::None, &Device::Cpu).unwrap();
    let r = reference("llama_gqa");
    let batch_logits = model
        .forward(ModelInput::Ids(&r.input_ids), &r.attention_mask)
        .unwrap();
    let batch_logp = token_logprobs(&batch_logits, &r.input_ids).unwrap();
    let lengths: Vec<f32> = r.attention_mask.sum(1).unwrap().to_vec1().unwrap();
    for (row, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        let ids = r
            .input_ids
            .narrow(0, row, 1)
            .unwrap()
            .narrow(1, 0, len)
            .unwrap();
        let mask = Tensor::ones((1, len), DType::F32, &Device::Cpu).unwrap();
        let alone = model.forward(ModelInput::Ids(&ids), &mask).unwrap();
        let alone = token_logprobs(&alone, &ids).unwrap();
        let in_batch = batch_logp
            .narrow(0, row, 1)
            .unwrap()
            .narrow(1, 0, len - 1)
            .unwrap();
        let diff = (alone - in_batch)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap();
        let diff = diff.max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "row {row}: padded vs alone differ by {diff}");
    }
}

/// Feeding the embeddings of the ids gives exactly the logits of the ids.
#[test]
fn embeddings_input_equals_ids_input() {
    let dir = fixtures().join("qwen2_tied");
    let model = LlamaForCausalLM::from_pretrained(&dir, &Trainable::None, &Device::Cpu).unwrap();
    let r = reference("qwen2_tied");
    let from_ids = model
        .forward(ModelInput::Ids(&r.input_ids), &r.attention_mask)
        .unwrap();
    let embeds = model.embed(&r.input_ids).unwrap();
    let from_embeds = model
        .forward(ModelInput::Embeds(&embeds), &r.attention_mask)
        .unwrap();
    let diff = (from_ids - from_embeds)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap();
    assert_eq!(diff.max(0).unwrap().to_scalar::<f32>().unwrap(), 0.0);
}

/// Freezing by name prefix: the frozen weight is not a variable and gets no
/// gradient; everything else still trains.
#[test]
fn frozen_parameters_get_no_gradient() {
    let dir = fixtures().join("llama_gqa");
    let frozen = Trainable::AllExcept(vec!["model.embed_tokens".into()]);
    let model = LlamaForCausalLM::from_pretrained(&dir, &frozen, &Device::Cpu).unwrap();
    let names: Vec<&str> = model
        .parameters()
        .vars()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(!names.contains(&"model.embed_tokens.weight"));
    assert_eq!(names.len() + 1, model.parameters().named().len());
    let r = reference("llama_gqa");
    let (_, loss) = mean_nll(&model, &r);
    let grads = loss.backward().unwrap();
    assert!(grads.get(model.embed_tokens()).is_none());
    for (_, var) in model.parameters().vars() {
        assert!(grads.get(var).is_some());
    }
}
