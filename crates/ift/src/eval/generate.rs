//! Greedy decoding for exact-match evaluation. Recomputes the full prefix
//! each step (no KV cache yet), which is fine for short answers.

use candle_core::{Device, Tensor, D};

use crate::model::{LlamaForCausalLM, ModelInput};
use crate::Result;

/// Greedily extends `prompt` by at most `max_new_tokens`, stopping after any
/// id in `stop` (which is not returned). Returns only the new tokens.
pub fn greedy_generate(
    model: &LlamaForCausalLM,
    prompt: &[u32],
    max_new_tokens: usize,
    stop: &[u32],
    device: &Device,
) -> Result<Vec<u32>> {
    let model = model.detached();
    let mut ids = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..max_new_tokens {
        let t = ids.len();
        let input = Tensor::from_slice(&ids, (1, t), device)?;
        let mask = Tensor::ones((1, t), candle_core::DType::F32, device)?;
        let logits = model.forward(ModelInput::Ids(&input), &mask)?;
        let next = logits
            .narrow(1, t - 1, 1)?
            .squeeze(1)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?[0];
        if stop.contains(&next) {
            break;
        }
        out.push(next);
        ids.push(next);
    }
    Ok(out)
}
