//! Gradients the tests compare: the masked mean NLL through a `Policy`, the
//! trainable tensors' gradients in model order, and a small LoRA adapter
//! whose B is non-zero (so that A gets a gradient too).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use ift::adapter::{LoraConfig, TargetModule};
use ift::loss::masked_mean;
use ift::model::{LlamaForCausalLM, ModelInput};
use ift::train::Policy;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// The token-mean NLL of `ids` (targets where `mask[:, 1:]` is set) and its
/// backward through `policy`.
pub fn nll_backward(
    policy: &Policy<'_>,
    input: ModelInput<'_>,
    mask: &Tensor,
    ids: &Tensor,
) -> (f32, GradStore) {
    let t = mask.dim(1).unwrap();
    let target = mask.narrow(1, 1, t - 1).unwrap();
    // Only the targets' head rows run (the padding's are skipped).
    let wanted: Vec<Vec<bool>> = target
        .to_vec2::<f32>()
        .unwrap()
        .iter()
        .map(|r| r.iter().map(|&m| m != 0.0).collect())
        .collect();
    let logp = policy
        .token_logprobs(input, mask, ids, Some(&wanted))
        .unwrap();
    let loss = masked_mean(&logp.neg().unwrap(), &target).unwrap();
    let store = policy.backward(&loss).unwrap();
    (loss.to_scalar().unwrap(), store)
}

/// Every trainable tensor's gradient in `store`, by name, in model order, on the CPU.
pub fn trainable_grads(model: &LlamaForCausalLM, store: &GradStore) -> Vec<(String, Tensor)> {
    model
        .parameters()
        .vars()
        .iter()
        .map(|(n, v)| {
            let g = store.get(v).unwrap_or_else(|| panic!("{n}: no gradient"));
            (n.clone(), g.to_device(&Device::Cpu).unwrap())
        })
        .collect()
}

/// LoRA r 4, alpha 8, on `targets`.
pub fn small_lora(targets: &[TargetModule], dropout: f64) -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout,
        target_modules: targets.to_vec(),
        use_rslora: false,
    }
}

/// Sets every `lora_B` (zero at PEFT's initialisation, which leaves A
/// without a gradient) to values drawn uniformly from ±`scale` by a seeded
/// generator (candle's CPU `randn` cannot be seeded).
pub fn nonzero_lora_b(model: &LlamaForCausalLM, seed: u64, scale: f32) {
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, var) in model.parameters().vars() {
        if name.contains("lora_B") {
            let v: Vec<f32> = (0..var.elem_count())
                .map(|_| rng.random_range(-scale..scale))
                .collect();
            let t = Tensor::from_vec(v, var.shape(), var.device()).unwrap();
            var.set(&t).unwrap();
        }
    }
}
