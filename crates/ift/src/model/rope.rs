//! Rotary position embeddings in Hugging Face's `rotate_half` layout: the
//! first and second halves of each head dimension form the rotated pairs.
//!
//! candle-nn's fused `rotary_emb::*` kernels record no backward pass
//! (upstream issue #2168), so rotation is written with primitive ops here.

use candle_core::{DType, Device, Tensor, D};

use super::config::{LlamaConfig, RopeScaling};

/// Inverse frequencies, `(head_dim / 2,)`, after any rope scaling.
pub fn inv_freq(cfg: &LlamaConfig) -> Vec<f32> {
    let dim = cfg.head_dim;
    let base: Vec<f64> = (0..dim / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    match cfg.rope_scaling {
        RopeScaling::Default => base.iter().map(|&f| f as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            // Llama 3.1: long wavelengths are slowed by `factor`, short ones
            // kept, and the band between interpolated smoothly.
            let old_len = original_max_position_embeddings as f64;
            let low_freq_wavelen = old_len / low_freq_factor;
            let high_freq_wavelen = old_len / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen < high_freq_wavelen {
                        f
                    } else if wavelen > low_freq_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_len / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    };
                    scaled as f32
                })
                .collect()
        }
    }
}

/// `cos` and `sin` tables for positions `0..seq_len`, each `(seq_len, head_dim)`.
pub fn cos_sin(
    inv_freq: &[f32],
    seq_len: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let inv = Tensor::from_slice(inv_freq, (1, half), device)?;
    let pos = Tensor::arange(0u32, seq_len as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((seq_len, 1))?;
    let freqs = pos.broadcast_mul(&inv)?; // (t, d/2)
    let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?; // (t, d)
    Ok((emb.cos()?, emb.sin()?))
}

/// Rotates `x` `(b, h, t, d)` by the tables from [`cos_sin`].
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)?.add(&rotated.broadcast_mul(sin)?)
}

/// `cos` and `sin` tables for arbitrary per-row positions: `positions` is
/// `(b, t)` (any numeric dtype, e.g. from a left-padded mask's cumulative
/// sum); each table is `(b, 1, t, head_dim)`, broadcasting over heads.
pub fn cos_sin_at(inv_freq: &[f32], positions: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let (b, t) = positions.dims2()?;
    let half = inv_freq.len();
    let inv = Tensor::from_slice(inv_freq, (1, 1, half), positions.device())?;
    let pos = positions.to_dtype(DType::F32)?.reshape((b, t, 1))?;
    let freqs = pos.broadcast_mul(&inv)?; // (b, t, d/2)
    let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?.unsqueeze(1)?; // (b, 1, t, d)
    Ok((emb.cos()?, emb.sin()?))
}
