//! Putting an adapter on a model: a fresh one (PEFT's initialisation), one
//! read from a PEFT directory (to continue training, to resume, or merged in
//! for inference), and the policy a run trains.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Uniform};

use super::config::LoraConfig;
use super::peft::{read_adapter_config, read_adapter_tensors, ADAPTER_WEIGHTS};
use crate::error::{Error, Result};
use crate::model::{LlamaForCausalLM, Pretrained, Trainable};

/// Adds a fresh trainable adapter: `A` Kaiming-uniform as PEFT (torch's
/// `kaiming_uniform_(a=√5)`, i.e. `U(−1/√in, 1/√in)`), `B` zeros, so the
/// model starts exactly at its base. Values are drawn from `seed` in model order.
pub fn attach_fresh(model: &mut LlamaForCausalLM, config: &LoraConfig, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4C6F_5241); // "LoRA"
    let device = model.embed_tokens().device().clone();
    let mut source = |name: &str, shape: &[usize]| -> Result<Tensor> {
        if name.ends_with("lora_B.weight") {
            return Ok(Tensor::zeros(shape, candle_core::DType::F32, &device)?);
        }
        let bound = 1.0 / (shape[1] as f32).sqrt();
        let dist = Uniform::new(-bound, bound).map_err(|e| Error::Train(e.to_string()))?;
        let v: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| dist.sample(&mut rng))
            .collect();
        Ok(Tensor::from_vec(v, shape, &device)?)
    };
    model.attach_lora(config, &mut source, true)
}

/// Adds the adapter saved in the PEFT directory `dir`; its settings are
/// returned. Every tensor the targets need must be there with its shape, and
/// nothing else may be.
pub fn attach_saved(
    model: &mut LlamaForCausalLM,
    dir: &Path,
    trainable: bool,
) -> Result<LoraConfig> {
    let config = read_adapter_config(dir)?;
    let device = model.embed_tokens().device().clone();
    let mut tensors: HashMap<String, Tensor> = read_adapter_tensors(dir, &device)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let bad = |message: String| Error::Adapter {
        path: path.clone(),
        message,
    };
    let mut source = |name: &str, shape: &[usize]| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| bad(format!("missing tensor `{name}` (shape {shape:?})")))?;
        if t.dims() != shape {
            let m = format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.dims()
            );
            return Err(bad(m));
        }
        Ok(t)
    };
    model.attach_lora(&config, &mut source, trainable)?;
    let mut left: Vec<&String> = tensors.keys().collect();
    left.sort();
    if let Some(name) = left.first() {
        let m = format!("tensor `{name}` belongs to no adapted projection of this model");
        return Err(bad(m));
    }
    Ok(config)
}

/// A model directory with the adapter of `adapter` merged in, for inference
/// (`--adapter` on `eval`, `generate`, `chat`, `score`; `ift merge`).
pub fn load_merged(model_dir: &Path, adapter: &Path, device: &Device) -> Result<Pretrained> {
    let mut pre = Pretrained::load(model_dir, &Trainable::None, device)?;
    super::base::check_base(&pre.model, model_dir, adapter)?;
    attach_saved(&mut pre.model, adapter, false)?;
    pre.model = pre.model.merged()?;
    Ok(pre)
}

/// `load_merged` when `adapter` is given, the plain directory otherwise.
pub fn load_for_inference(
    model_dir: &Path,
    adapter: Option<&Path>,
    device: &Device,
) -> Result<Pretrained> {
    match adapter {
        Some(a) => load_merged(model_dir, a, device),
        None => Pretrained::load(model_dir, &Trainable::None, device),
    }
}
