//! Generation (issue 6) against `transformers`' greedy `generate`, written by
//! `scripts/reference/make_generation_fixtures.py` (versions in each fixture):
//! token-for-token equality, single prompts and a left-padded batch; plus the
//! cache against the full-sequence forward, seeded sampling, stop rules.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use ift::eval::{generate, greedy_generate, GenerateOptions};
use ift::model::{position_ids_from_mask, KvCache, ModelInput, Pretrained, Trainable};
use serde_json::Value;

const MODELS: [&str; 3] = ["llama_gqa", "llama3_rope", "qwen2_tied"];

fn load(name: &str) -> (Pretrained, Value) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let pre = Pretrained::load(
        &root.join("models").join(name),
        &Trainable::None,
        &Device::Cpu,
    )
    .unwrap();
    let text = std::fs::read_to_string(root.join(format!("generation/{name}.json"))).unwrap();
    (pre, serde_json::from_str(&text).unwrap())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        ..GenerateOptions::default()
    }
}

#[test]
fn greedy_matches_transformers_single_and_left_padded_batch() {
    for name in MODELS {
        let (pre, fx) = load(name);
        let max = fx["max_new_tokens"].as_u64().unwrap() as usize;
        let single = fx["single"].as_array().unwrap();
        let prompts: Vec<Vec<u32>> = single.iter().map(|s| ids(&s["input_ids"])).collect();
        let want: Vec<Vec<u32>> = single.iter().map(|s| ids(&s["output_ids"])).collect();
        for (p, w) in prompts.iter().zip(&want) {
            let got = greedy_generate(&pre.model, p, max, &[], &Device::Cpu).unwrap();
            assert_eq!(&got, w, "{name}: greedy_generate");
            let got = generate(
                &pre.model,
                &pre.tokenizer,
                std::slice::from_ref(p),
                &greedy(max),
                &Device::Cpu,
                |_, _| {},
            );
            assert_eq!(&got.unwrap()[0], w, "{name}: generate, one row");
        }
        let batched: Vec<Vec<u32>> = fx["batched"]["output_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let mut streamed = vec![Vec::new(); prompts.len()];
        let got = generate(
            &pre.model,
            &pre.tokenizer,
            &prompts,
            &greedy(max),
            &Device::Cpu,
            |r, t| streamed[r].push(t),
        )
        .unwrap();
        assert_eq!(got, batched, "{name}: left-padded batch");
        assert_eq!(streamed, got, "{name}: on_token sees every token in order");
    }
}

#[test]
fn cached_logits_equal_full_forward_with_left_padding() {
    for name in MODELS {
        let (pre, fx) = load(name);
        let b = &fx["batched"];
        let rows: Vec<Vec<u32>> = b["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let mask: Vec<Vec<u32>> = b["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let (n, t) = (rows.len(), rows[0].len());
        let flat = |v: &[Vec<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
        let dev = Device::Cpu;
        let id_t = Tensor::from_vec(flat(&rows), (n, t), &dev).unwrap();
        let mask_t = Tensor::from_vec(flat(&mask), (n, t), &dev).unwrap();
        let pos = position_ids_from_mask(&mask);
        let pos_t = Tensor::from_vec(flat(&pos), (n, t), &dev).unwrap();
        let model = pre.model.detached();
        // Each row's reference: the full-sequence forward of its unpadded prompt.
        let full: Vec<(usize, Tensor)> = (0..n)
            .map(|r| {
                let pad = mask[r].iter().take_while(|&&m| m == 0).count();
                let alone = Tensor::new(&rows[r][pad..], &dev)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let ones = Tensor::ones((1, t - pad), DType::F32, &dev).unwrap();
                (pad, model.forward(ModelInput::Ids(&alone), &ones).unwrap())
            })
            .collect();
        // Prefill all but the last 3 positions, then feed them one at a time.
        let mut cache = KvCache::new(&model);
        let split = t - 3;
        let cut = |x: &Tensor, s: usize, l: usize| x.narrow(1, s, l).unwrap();
        model
            .forward_cached(
                &cut(&id_t, 0, split),
                &cut(&mask_t, 0, split),
                &cut(&pos_t, 0, split),
                &mut cache,
            )
            .unwrap();
        for i in split..t {
            let got = model
                .forward_cached(
                    &cut(&id_t, i, 1),
                    &cut(&mask_t, 0, i + 1),
                    &cut(&pos_t, i, 1),
                    &mut cache,
                )
                .unwrap();
            for (r, (pad, f)) in full.iter().enumerate() {
                let want = f.narrow(1, i - pad, 1).unwrap();
                let row = got.narrow(0, r, 1).unwrap();
                let diff = (row - want).unwrap().abs().unwrap().max_all().unwrap();
                let diff = diff.to_scalar::<f32>().unwrap();
                assert!(
                    diff < 1e-4,
                    "{name}: row {r} position {i}: max |Δlogit| = {diff}"
                );
            }
        }
        assert_eq!(cache.len(), t);
    }
}

fn sampled(seed: u64) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: 12,
        temperature: 1.0,
        top_k: 50,
        top_p: 0.9,
        repetition_penalty: 1.1,
        seed,
        ..GenerateOptions::default()
    }
}

#[test]
fn sampling_is_reproducible_and_temperature_zero_is_greedy() {
    let (pre, fx) = load("llama_gqa");
    let prompts: Vec<Vec<u32>> = fx["single"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| ids(&s["input_ids"]))
        .collect();
    let run = |o: &GenerateOptions| {
        generate(
            &pre.model,
            &pre.tokenizer,
            &prompts,
            o,
            &Device::Cpu,
            |_, _| {},
        )
        .unwrap()
    };
    let a = run(&sampled(7));
    assert_eq!(a, run(&sampled(7)), "same seed, same tokens");
    assert!(a.iter().all(|r| r.len() == 12));
    let others: Vec<_> = (8..12).map(|s| run(&sampled(s))).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "the seed changes the samples"
    );
    // Temperature 0 ignores the sampling options: greedy, whatever the seed.
    let greedy_out = run(&greedy(12));
    let zero = GenerateOptions {
        temperature: 0.0,
        repetition_penalty: 1.0,
        ..sampled(3)
    };
    assert_eq!(run(&zero), greedy_out);
    // top_k = 1 samples the argmax.
    let k1 = GenerateOptions {
        top_k: 1,
        repetition_penalty: 1.0,
        ..sampled(5)
    };
    assert_eq!(run(&k1), greedy_out);
}

#[test]
fn stop_tokens_and_stop_strings_cut_each_row() {
    let (pre, fx) = load("qwen2_tied");
    let single = fx["single"].as_array().unwrap();
    let prompts: Vec<Vec<u32>> = single.iter().map(|s| ids(&s["input_ids"])).collect();
    let full: Vec<Vec<u32>> = single.iter().map(|s| ids(&s["output_ids"])).collect();
    let tok = &pre.tokenizer;
    // Stop token: the 5th greedy token of row 0; that row ends before it, excluded.
    let stop_id = full[0][4];
    let opts = GenerateOptions {
        stop_token_ids: vec![stop_id],
        ..greedy(12)
    };
    let got = generate(&pre.model, tok, &prompts, &opts, &Device::Cpu, |_, _| {}).unwrap();
    for (g, f) in got.iter().zip(&full) {
        let cut = f.iter().position(|&t| t == stop_id).unwrap_or(f.len());
        assert_eq!(g, &f[..cut]);
    }
    // Stop string: text from the middle of row 1's greedy decoding. The row ends
    // with the shortest prefix whose decoding contains it; other rows go on.
    let text = tok.decode(&full[1], false).unwrap();
    let chars: Vec<char> = text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let opts = GenerateOptions {
        stop_strings: vec![stop.clone()],
        ..greedy(12)
    };
    let got = generate(&pre.model, tok, &prompts, &opts, &Device::Cpu, |_, _| {}).unwrap();
    for (g, f) in got.iter().zip(&full) {
        let n = (1..=f.len())
            .find(|&n| tok.decode(&f[..n], false).unwrap().contains(&stop))
            .unwrap_or(f.len());
        assert_eq!(g, &f[..n], "stop string {stop:?}");
    }
    assert!(got[1].len() < 12, "row 1 stopped early");
}

/// The logits processors on hand-made cases, with transformers' semantics.
#[test]
fn penalty_top_k_top_p_on_hand_made_logits() {
    use ift::eval::sampling::{apply_repetition_penalty, argmax, choose_token};
    use rand::SeedableRng;
    // RepetitionPenaltyLogitsProcessor: positive / p, negative * p, each id once.
    let mut l = vec![2.0, -1.0, 0.5, 3.0];
    apply_repetition_penalty(&mut l, &[0, 1, 1], 2.0);
    assert_eq!(l, vec![1.0, -2.0, 0.5, 3.0]);
    assert_eq!(
        argmax(&[1.0, 3.0, 3.0]),
        1,
        "first maximum, as torch.argmax"
    );
    // probabilities 0.5, 0.3, 0.2 (logits are their logs).
    let logits: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
    let draws = |opts: GenerateOptions| -> std::collections::BTreeSet<u32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        (0..400)
            .map(|_| choose_token(&logits, &opts, &mut rng))
            .collect()
    };
    let base = GenerateOptions {
        temperature: 1.0,
        ..GenerateOptions::default()
    };
    assert_eq!(draws(base.clone()).len(), 3);
    assert_eq!(
        draws(GenerateOptions {
            top_k: 2,
            ..base.clone()
        }),
        [0, 1].into()
    );
    // top_p 0.7: {0.5} is not enough, {0.5, 0.3} reaches it.
    assert_eq!(
        draws(GenerateOptions {
            top_p: 0.7,
            ..base.clone()
        }),
        [0, 1].into()
    );
    assert_eq!(
        draws(GenerateOptions {
            top_p: 0.4,
            ..base.clone()
        }),
        [0].into()
    );
    // A tiny temperature concentrates on the argmax.
    assert_eq!(
        draws(GenerateOptions {
            temperature: 1e-3,
            ..base
        }),
        [0].into()
    );
}
