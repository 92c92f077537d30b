//! The embedded default that `ift demo` trains: nothing downloaded. A tiny
//! Llama (random init from a fixed seed), a character-level tokenizer with a
//! ChatML template, and a task whose held-out answers are checked exactly:
//! reverse a short lowercase word.

use std::path::Path;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

use ift::model::{Family, LlamaConfig, LlamaForCausalLM, RopeScaling, SaveOptions, Trainable};
use ift::{Error, Result};

/// Characters the demo tokenizer knows, after its three special tokens.
const ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789 \n:?.,'";
const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// ChatML, as SmolLM2 and Qwen2 write it (without a default system prompt).
const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The demo model: about 1.6 M parameters, small enough to train for a
/// couple of minutes on 2 CPU cores and still learn the task.
pub fn model_config() -> LlamaConfig {
    LlamaConfig {
        family: Family::Llama,
        vocab_size: SPECIALS.len() + ALPHABET.chars().count(),
        hidden_size: 192,
        intermediate_size: 512,
        num_hidden_layers: 4,
        num_attention_heads: 6,
        num_key_value_heads: 2,
        head_dim: 32,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        rope_scaling: RopeScaling::Default,
        max_position_embeddings: 256,
        tie_word_embeddings: true,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        sliding_window: None,
        torch_dtype: Some("float32".into()),
    }
}

/// Writes the random base model, its tokenizer and chat template to `dir`
/// as a Hugging Face model directory.
pub fn write_base_model(dir: &Path, seed: u64) -> Result<()> {
    let model = LlamaForCausalLM::random(
        model_config(),
        0.02,
        seed,
        &Trainable::None,
        &candle_core::Device::Cpu,
    )?;
    model.save_pretrained(dir, &SaveOptions::default())?;
    let write = |name: &str, v: Value| {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&v).expect("JSON")).map_err(|source| {
            Error::Io {
                path: path.clone(),
                source,
            }
        })
    };
    write("tokenizer.json", tokenizer_json())?;
    write(
        "tokenizer_config.json",
        json!({"bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE, "model_max_length": 256}),
    )?;
    write(
        "generation_config.json",
        json!({"eos_token_id": 2, "pad_token_id": 0}),
    )
}

/// A character-level `tokenizer.json`: a BPE model with no merges, so every
/// character is one token, and a `Fuse` decoder that joins them back.
fn tokenizer_json() -> Value {
    let added: Vec<Value> = SPECIALS
        .iter()
        .enumerate()
        .map(|(id, t)| json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let mut vocab = serde_json::Map::new();
    for (id, t) in SPECIALS.iter().enumerate() {
        vocab.insert(t.to_string(), id.into());
    }
    for (i, c) in ALPHABET.chars().enumerate() {
        vocab.insert(c.to_string(), (SPECIALS.len() + i).into());
    }
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": null, "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": []}
    })
}

/// One task instance: the user's question and the exact expected answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub question: String,
    pub answer: String,
}

impl Problem {
    /// As a chat record (`{"messages": [...]}`).
    pub fn to_record(&self) -> Value {
        json!({"messages": [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer}]})
    }
}

/// `n` reversal problems from `seed`: words of 3 to 6 letters from the
/// first 12 letters of the alphabet (so the task is learnable in minutes).
pub fn problems(n: usize, seed: u64) -> Vec<Problem> {
    let letters: Vec<char> = "abcdefghijkl".chars().collect();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.random_range(3..=6);
            let word: String = (0..len)
                .map(|_| letters[rng.random_range(0..letters.len())])
                .collect();
            Problem {
                question: format!("reverse {word}"),
                answer: word.chars().rev().collect(),
            }
        })
        .collect()
}

/// `n_train` training and `n_eval` held-out problems with no held-out
/// question among the training ones.
pub fn split(n_train: usize, n_eval: usize, seed: u64) -> (Vec<Problem>, Vec<Problem>) {
    let eval = problems(n_eval, seed.wrapping_add(1));
    let held: std::collections::HashSet<&str> = eval.iter().map(|p| p.question.as_str()).collect();
    let mut train = Vec::with_capacity(n_train);
    let mut round = 2;
    while train.len() < n_train {
        let batch = problems(n_train, seed.wrapping_add(round));
        train.extend(
            batch
                .into_iter()
                .filter(|p| !held.contains(p.question.as_str()))
                .take(n_train - train.len()),
        );
        round += 1;
    }
    (train, eval)
}

/// Share of `problems` whose greedy answer (rendered with the model's chat
/// template, generation stopped at the end-of-turn token) equals the
/// expected answer exactly.
pub fn exact_match(
    model: &LlamaForCausalLM,
    tokenizer: &ift::tokenizer::HfTokenizer,
    problems: &[Problem],
) -> Result<f64> {
    use ift::data::{ChatTemplate, Message, Role, TemplateOptions};
    let template = ChatTemplate::for_tokenizer(tokenizer, &TemplateOptions::default())?
        .ok_or_else(|| Error::Tokenizer {
            dir: tokenizer.path().to_path_buf(),
            message: "the demo model has no chat template".into(),
        })?;
    let stop: Vec<u32> = tokenizer.eos_token_id().into_iter().collect();
    let mut correct = 0;
    for p in problems {
        let prompt = template
            .render(&[Message::new(Role::User, p.question.clone())], true)
            .map_err(|e| Error::Train(format!("rendering the demo prompt: {e}")))?;
        let ids = tokenizer.encode(&prompt, false)?.ids;
        let out = ift::eval::greedy_generate(
            model,
            &ids,
            p.answer.chars().count() + 4,
            &stop,
            &candle_core::Device::Cpu,
        )?;
        if tokenizer.decode(&out, true)?.trim() == p.answer {
            correct += 1;
        }
    }
    Ok(correct as f64 / problems.len().max(1) as f64)
}

/// The demo's conclusion from per-seed exact-match rates (`sft[i]`, `ift[i]`
/// of the same seed, each over `n_eval` held-out words), worded to claim no
/// more than the numbers support: a difference counts only when every seed
/// agrees and the smallest gap exceeds twice the sampling error of one rate.
pub fn verdict(sft: &[f64], ift: &[f64], n_eval: usize) -> String {
    let n = sft.len().min(ift.len());
    if n == 0 {
        return "no seeds ran".into();
    }
    let gaps: Vec<f64> = sft.iter().zip(ift).map(|(s, i)| 100.0 * (i - s)).collect();
    let (lo, hi) = gaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &g| (a.min(g), b.max(g)));
    // Largest binomial standard error of one seed's two rates, in points.
    let se = sft
        .iter()
        .chain(ift)
        .map(|&p| 100.0 * (p * (1.0 - p) / n_eval.max(1) as f64).sqrt())
        .fold(0.0, f64::max);
    let ahead = gaps.iter().filter(|&&g| g > 0.0).count();
    let behind = gaps.iter().filter(|&&g| g < 0.0).count();
    let seeds = if n == 1 { "the one seed" } else { "every seed" };
    let noise = format!("one rate's sampling error: ±{se:.0}");
    let (who, small, large) = match (ahead == n, behind == n) {
        (true, _) => ("IFT ahead of SFT", lo, hi),
        (_, true) => ("SFT ahead of IFT", -hi, -lo),
        _ => {
            return format!("no consistent difference: IFT ahead in {ahead} of {n} seeds, SFT in {behind}; gaps {lo:+.0} to {hi:+.0} points ({noise})");
        }
    };
    let clear = small > 2.0 * se;
    format!(
        "{who} in {seeds} ({n}/{n}), by {small:.0} to {large:.0} points ({noise}){}",
        match clear {
            true => "",
            false =>
                "; the smallest gap is within twice that, so this suggests, not shows, a difference",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_claims_a_winner_only_when_every_seed_agrees_beyond_noise() {
        let v = verdict(&[0.02, 0.10, 0.05], &[0.99, 0.95, 0.90], 100);
        assert!(
            v.starts_with("IFT ahead of SFT in every seed (3/3), by 85 to 97"),
            "{v}"
        );
        let v = verdict(&[0.02, 0.90], &[0.99, 0.10], 100);
        assert!(
            v.starts_with("no consistent difference: IFT ahead in 1 of 2 seeds, SFT in 1"),
            "{v}"
        );
        // Every seed agrees, but by less than twice one rate's sampling error.
        let v = verdict(&[0.50, 0.50], &[0.52, 0.53], 100);
        assert!(
            v.starts_with("IFT ahead of SFT in every seed (2/2), by 2 to 3"),
            "{v}"
        );
        assert!(
            v.ends_with("so this suggests, not shows, a difference"),
            "{v}"
        );
        let v = verdict(&[0.02, 0.10, 0.05], &[0.99, 0.95, 0.90], 100);
        assert!(!v.contains("suggests"), "{v}");
        let v = verdict(&[0.9], &[0.1], 100);
        assert!(
            v.starts_with("SFT ahead of IFT in the one seed (1/1), by 80 to 80"),
            "{v}"
        );
        assert_eq!(verdict(&[], &[], 100), "no seeds ran");
    }

    #[test]
    fn held_out_questions_never_appear_in_training() {
        let (train, eval) = split(500, 100, 3);
        assert_eq!((train.len(), eval.len()), (500, 100));
        assert!(eval
            .iter()
            .all(|e| train.iter().all(|t| t.question != e.question)));
        assert!(train
            .iter()
            .all(|p| p.answer.chars().rev().collect::<String>() == p.question["reverse ".len()..]));
    }

    #[test]
    fn demo_tokenizer_is_character_level_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        write_base_model(dir.path(), 0).unwrap();
        let pre =
            ift::model::Pretrained::load(dir.path(), &Trainable::None, &candle_core::Device::Cpu)
                .unwrap();
        let enc = pre.tokenizer.encode("reverse abc", false).unwrap();
        assert_eq!(enc.ids.len(), "reverse abc".len());
        assert_eq!(
            pre.tokenizer.decode(&enc.ids, false).unwrap(),
            "reverse abc"
        );
        let im_end = pre.tokenizer.encode("<|im_end|>", false).unwrap().ids;
        assert_eq!(im_end, vec![2]);
    }
}
