//! `ift bench MODEL matmul`: the training step's projection and head matmuls,
//! shape by shape, on candle's matmul (the `gemm` crate on the CPU) and on
//! the engine's (`engine::kernels::matmul`: OpenBLAS in an `openblas` build),
//! so the choice of backend rests on the shapes a step really multiplies.
//!
//! Each projection `W (out, in)` over `rows` tokens costs three matmuls a
//! step, with the layouts the engine uses: the forward `x Wᵀ`, the input
//! gradient `dY W` and the weight gradient `dYᵀ x`. Attention's batched
//! matmuls are left out (a few percent of a step's FLOPs at 256 tokens), and
//! so is the head's recomputed forward when its backward does not keep logits.
//! Q/K/V and gate/up fused into one matmul each are timed too, as a
//! comparison the engine does not use (`per_step` 0): on the 32M and SmolLM2
//! shapes they ran at their parts' rate (scripts/bench/README.md), so fusing
//! would add a weight concatenation per step for no gain.

use std::time::Instant;

use candle_core::{Device, Tensor};

use ift::engine::head_chunk_cols as chunk_cols;
use ift::engine::matmul;
use ift::model::LlamaConfig;
use ift::Result;

/// One matmul of a step: `(m, k) · (k, n)`, `per_step` times.
#[derive(Debug, Clone)]
pub struct MatmulShape {
    /// e.g. `mlp.up_proj dW`.
    pub what: String,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub per_step: usize,
    /// Which operand the engine passes as a transposed view.
    pub lhs_transposed: bool,
    pub rhs_transposed: bool,
}

/// A shape's rate on both backends, in GFLOP/s (median of the timed runs).
#[derive(Debug, Clone)]
pub struct MatmulTiming {
    pub shape: MatmulShape,
    pub candle_gflops: f64,
    pub engine_gflops: f64,
}

/// The projection and head matmuls of one step over `rows` tokens.
pub fn step_shapes(cfg: &LlamaConfig, rows: usize) -> Vec<MatmulShape> {
    let (h, l) = (cfg.hidden_size, cfg.num_hidden_layers);
    let (qd, kvd) = (
        cfg.num_attention_heads * cfg.head_dim,
        cfg.num_key_value_heads * cfg.head_dim,
    );
    let ffn = cfg.intermediate_size;
    let projections = [
        ("self_attn.q_proj", qd, h, l),
        ("self_attn.k_proj", kvd, h, l),
        ("self_attn.v_proj", kvd, h, l),
        ("self_attn.o_proj", h, qd, l),
        ("mlp.gate_proj", ffn, h, l),
        ("mlp.up_proj", ffn, h, l),
        ("mlp.down_proj", h, ffn, l),
    ];
    // The head runs in vocabulary chunks (`kernels::vocab`), a matmul each.
    let chunk = chunk_cols(rows, cfg.vocab_size);
    let full = cfg.vocab_size / chunk;
    let mut projections = projections.to_vec();
    // Projections that read the same input, fused into one matmul: timed for
    // comparison with their parts (whether fusing would pay on these shapes),
    // `per_step` 0 because the engine does not fuse them.
    projections.push(("self_attn.qkv (fused, comparison)", qd + 2 * kvd, h, 0));
    projections.push(("mlp.gate_up (fused, comparison)", 2 * ffn, h, 0));
    projections.push(("lm_head (chunk)", chunk, h, full));
    if !cfg.vocab_size.is_multiple_of(chunk) {
        projections.push(("lm_head (last chunk)", cfg.vocab_size % chunk, h, 1));
    }
    let mut out = Vec::new();
    for (name, o, i, count) in projections {
        let shape = |pass: &str, m, k, n, lt, rt| MatmulShape {
            what: format!("{name} {pass}"),
            m,
            k,
            n,
            per_step: count,
            lhs_transposed: lt,
            rhs_transposed: rt,
        };
        out.push(shape("x·Wᵀ", rows, i, o, false, true));
        out.push(shape("dY·W", rows, o, i, false, false));
        out.push(shape("dW", o, rows, i, true, false));
    }
    out
}

fn operand(rows: usize, cols: usize, transposed: bool) -> Result<Tensor> {
    let dev = &Device::Cpu;
    Ok(if transposed {
        Tensor::randn(0f32, 1.0, (cols, rows), dev)?.t()?
    } else {
        Tensor::randn(0f32, 1.0, (rows, cols), dev)?
    })
}

fn median_gflops(s: &MatmulShape, iters: usize, f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    f()?; // warm-up: first-touch pages, packing buffers
    let mut t: Vec<f64> = (0..iters.max(1))
        .map(|_| {
            let start = Instant::now();
            f().map(|_| start.elapsed().as_secs_f64())
        })
        .collect::<Result<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(2.0 * (s.m * s.k * s.n) as f64 / t[t.len() / 2] / 1e9)
}

/// Times every shape of [`step_shapes`] on both backends, on the CPU.
pub fn run_matmul_bench(cfg: &LlamaConfig, rows: usize, iters: usize) -> Result<Vec<MatmulTiming>> {
    let shapes = step_shapes(cfg, rows);
    // The whole list once untimed first: whatever shape came first measured
    // 20–40 % slow on both backends (the process's first large matmuls),
    // even after a few warm-up calls of its own.
    for s in &shapes {
        time_shape(s.clone(), 1)?;
    }
    shapes.into_iter().map(|s| time_shape(s, iters)).collect()
}

fn time_shape(s: MatmulShape, iters: usize) -> Result<MatmulTiming> {
    let a = operand(s.m, s.k, s.lhs_transposed)?;
    let b = operand(s.k, s.n, s.rhs_transposed)?;
    let candle_gflops = median_gflops(&s, iters, &|| Ok(a.matmul(&b)?))?;
    let engine_gflops = median_gflops(&s, iters, &|| Ok(matmul(&a, &b)?))?;
    Ok(MatmulTiming {
        shape: s,
        candle_gflops,
        engine_gflops,
    })
}

/// Seconds per step of these matmuls at each backend's measured rates
/// (`(candle, engine)`).
pub fn step_seconds(timings: &[MatmulTiming]) -> (f64, f64) {
    timings.iter().fold((0.0, 0.0), |(c, e), t| {
        let s = &t.shape;
        let gflop = 2.0 * (s.m * s.k * s.n * s.per_step) as f64 / 1e9;
        (c + gflop / t.candle_gflops, e + gflop / t.engine_gflops)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused comparison rows multiply what their parts do together
    /// (same rows and input, the parts' outputs side by side) and add
    /// nothing to a step's total.
    #[test]
    fn fused_rows_are_their_parts_side_by_side_and_not_in_the_step() {
        let cfg = ift::model::presets::preset("32m").unwrap();
        let shapes = step_shapes(&cfg, 64);
        let forward = |what: &str| {
            shapes
                .iter()
                .find(|s| s.what == format!("{what} x·Wᵀ"))
                .unwrap_or_else(|| panic!("no {what}"))
                .clone()
        };
        for (fused, parts) in [
            (
                "self_attn.qkv (fused, comparison)",
                &["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"][..],
            ),
            (
                "mlp.gate_up (fused, comparison)",
                &["mlp.gate_proj", "mlp.up_proj"][..],
            ),
        ] {
            let f = forward(fused);
            let n: usize = parts.iter().map(|p| forward(p).n).sum();
            assert_eq!((f.m, f.k, f.n, f.per_step), (64, cfg.hidden_size, n, 0));
        }
        let timing = |s: &MatmulShape| MatmulTiming {
            shape: s.clone(),
            candle_gflops: 1.0,
            engine_gflops: 2.0,
        };
        let all: Vec<_> = shapes.iter().map(timing).collect();
        let used: Vec<_> = shapes
            .iter()
            .filter(|s| s.per_step > 0)
            .map(timing)
            .collect();
        assert!(used.len() < all.len());
        assert_eq!(step_seconds(&all), step_seconds(&used));
    }
}
