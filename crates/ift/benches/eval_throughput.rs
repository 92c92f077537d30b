//! Eval throughput: multiple-choice choices scored per second on the "32M"
//! Llama config (random weights, CPU, f32), with ARC-shaped requests built
//! from random token ids (the fixture tokenizer cannot cover 8192 ids):
//! a 64-token context and a 12-token choice, 4 choices per question.
//!
//! `cargo bench -p ift --bench eval_throughput`. Environment:
//! `EVAL_BENCH_CHOICES` (choices per measurement, default 64).

use std::time::Instant;

use candle_core::Device;
use ift::data::EncodedExample;
use ift::eval::score_sequences;
use ift::model::{LlamaForCausalLM, Trainable};

#[path = "support/config_32m.rs"]
mod config;
use config::config_32m;
use rand::{rngs::StdRng, Rng, SeedableRng};

const CONTEXT: usize = 64;
const CHOICE: usize = 12;

/// Choices of one question share its context; only the choice tokens are scored.
fn requests(n: usize, rng: &mut StdRng) -> Vec<EncodedExample> {
    let mut out = Vec::with_capacity(n);
    let mut context: Vec<u32> = Vec::new();
    for i in 0..n {
        if i % 4 == 0 {
            context = (0..CONTEXT).map(|_| rng.random_range(0..8192)).collect();
        }
        // Choices differ in length (9..=12 tokens), as real ones do.
        let len = CHOICE - (i % 4);
        let mut ids = context.clone();
        ids.extend((0..len).map(|_| rng.random_range(0..8192u32)));
        let loss_mask = (0..ids.len()).map(|j| j >= CONTEXT).collect();
        out.push(EncodedExample {
            input_ids: ids,
            loss_mask,
        });
    }
    out
}

fn main() -> ift::Result<()> {
    let dev = Device::Cpu;
    let n: usize = std::env::var("EVAL_BENCH_CHOICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let model = LlamaForCausalLM::random(config_32m(), 0.02, 0, &Trainable::None, &dev)?;
    let examples = requests(n, &mut StdRng::seed_from_u64(0));
    // Warm-up: first-touch allocations and thread pools.
    score_sequences(&model, &examples[..8.min(n)], 8, &dev, |_| {})?;
    println!("| batch | choices | seconds | choices/s |\n|---|---|---|---|");
    for batch in [1, 8, 16] {
        let start = Instant::now();
        let scores = score_sequences(&model, &examples, batch, &dev, |_| {})?;
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(scores.len(), n);
        println!("| {batch} | {n} | {secs:.2} | {:.1} |", n as f64 / secs);
    }
    Ok(())
}
