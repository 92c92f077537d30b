//! llama.cpp tensor names → Hugging Face names, dequantisation, and undoing
//! llama.cpp's Q/K row permutation.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Tensor};

use super::config::{Arch, Dims};
use crate::error::GgufError;

/// The Hugging Face name of a llama.cpp tensor, or `None` for a name we do not
/// know (an error for the caller: dropping a tensor silently breaks the model).
pub fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Some(name.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    if kind != "weight" && kind != "bias" {
        return None;
    }
    let module = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{kind}"))
}

/// llama.cpp's `permute` (convert_hf_to_gguf.py), which reorders each head's
/// rows for interleaved rotary embeddings: rows viewed as `(heads, 2, d/2)`
/// become `(heads, d/2, 2)`. Used by tests to make GGUF files as llama.cpp does.
pub fn permute_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    reorder(w, heads, 2)
}

/// The inverse of [`permute_rows`]: back to Hugging Face's `rotate_half`
/// layout, rows `(heads, d/2, 2)` → `(heads, 2, d/2)`.
pub fn unpermute_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let rows = w.dim(0)?;
    reorder(w, heads, rows / heads / 2)
}

/// Views the rows as `(heads, a, rows/heads/a)` and swaps the last two axes.
fn reorder(w: &Tensor, heads: usize, a: usize) -> candle_core::Result<Tensor> {
    let shape = w.shape().clone();
    let rows = w.dim(0)?;
    let cols = w.elem_count() / rows;
    let b = rows / heads / a;
    w.reshape((heads, a, b, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(shape)
}

/// The tensor `name` of the open GGUF file `file` (at `path`), dequantised to f32.
pub fn dequantize(
    path: &Path,
    file: &mut std::fs::File,
    content: &Content,
    name: &str,
) -> Result<Tensor, GgufError> {
    let err = |e: candle_core::Error| GgufError::Tensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        message: e.to_string(),
    };
    let q = content.tensor(file, name, &Device::Cpu).map_err(err)?;
    q.dequantize(&Device::Cpu).map_err(err)
}

/// Every tensor of the file, dequantised to f32, un-permuted where llama.cpp
/// permuted it, then cast to `dtype`, under Hugging Face names.
pub fn hf_tensors(
    path: &Path,
    content: &Content,
    arch: Arch,
    dims: Dims,
    dtype: DType,
) -> Result<HashMap<String, Tensor>, GgufError> {
    let mut file = std::fs::File::open(path).map_err(|e| GgufError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut out = HashMap::new();
    for gguf in names {
        let err = |message: String| GgufError::Tensor {
            path: path.to_path_buf(),
            tensor: gguf.clone(),
            message,
        };
        let name = hf_name(gguf).ok_or_else(|| {
            err(
                "no Hugging Face equivalent known (rope_freqs and other extras are not supported)"
                    .into(),
            )
        })?;
        let mut t = dequantize(path, &mut file, content, gguf)?;
        // Only the llama converter permutes; Qwen2's rotary layout is HF's own.
        if arch == Arch::Llama {
            if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                t = unpermute_rows(&t, dims.heads).map_err(|e| err(e.to_string()))?;
            } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                t = unpermute_rows(&t, dims.kv_heads).map_err(|e| err(e.to_string()))?;
            }
        }
        let t = t.to_dtype(dtype).map_err(|e| err(e.to_string()))?;
        out.insert(name, t);
    }
    Ok(out)
}
