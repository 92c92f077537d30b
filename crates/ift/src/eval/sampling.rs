//! Choosing the next token from one row's logits: repetition penalty, then
//! greedy or temperature / top-k / top-p sampling, in the order transformers'
//! logits processors apply them.

use rand::{rngs::StdRng, Rng};
use serde::{Deserialize, Serialize};

/// How [`generate()`](super::generate()) decodes. Defaults are greedy decoding of at most
/// 256 tokens with no penalty, which is what exact-match evaluation wants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateOptions {
    /// Most new tokens per row (default 256); the stop token is not counted.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 (default) means greedy argmax, and the
    /// top-k / top-p / seed options are then unused.
    pub temperature: f64,
    /// Keep only the k most likely tokens before sampling; 0 (default) keeps all.
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose
    /// probability reaches `top_p`; 1.0 (default) keeps all.
    pub top_p: f64,
    /// CTRL-style penalty on every token already in the row (prompt included):
    /// positive logits divided by it, negative ones multiplied; 1.0 (default) is off.
    pub repetition_penalty: f64,
    /// A row stops when it produces one of these ids (not returned). Default none:
    /// callers add the tokenizer's EOS / end-of-turn ids.
    pub stop_token_ids: Vec<u32>,
    /// A row stops once the decoding of its new tokens contains one of these;
    /// the tokens through the one that completed the string are returned.
    pub stop_strings: Vec<String>,
    /// Seed of the sampler (default 0): same seed, same prompts, same output.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            seed: 0,
        }
    }
}

impl GenerateOptions {
    /// The range of each number: `(field, message)` of the first out of range.
    /// [`generate()`](super::generate()) refuses such options; `ift generate`, `ift chat`
    /// and `ift eval` check their flags with the same rules.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let check =
            |name: &'static str, r: Result<f64, String>| r.map(|_| ()).map_err(|m| (name, m));
        check("temperature", Self::check_temperature(self.temperature))?;
        check("top_p", Self::check_top_p(self.top_p))?;
        check(
            "repetition_penalty",
            Self::check_repetition_penalty(self.repetition_penalty),
        )
    }

    /// A temperature is a finite number >= 0 (0: greedy).
    pub fn check_temperature(v: f64) -> Result<f64, String> {
        crate::config::range::at_least(v, 0.0)
    }

    /// A nucleus mass is in [0, 1], as `transformers` checks it (1 keeps
    /// every token, 0 only the most likely).
    pub fn check_top_p(v: f64) -> Result<f64, String> {
        crate::config::range::within(v, 0.0, 1.0)
    }

    /// A repetition penalty divides and multiplies logits: a finite number > 0 (1: off).
    pub fn check_repetition_penalty(v: f64) -> Result<f64, String> {
        crate::config::range::above(v, 0.0)
    }

    /// The most new tokens a command line may ask for: at least 1 (0 would
    /// generate nothing and score every answer as empty).
    pub fn check_max_new_tokens(n: usize) -> Result<usize, String> {
        crate::config::range::count_at_least(n, 1, "0 would generate nothing")
    }
}

/// Applies the repetition penalty to `logits` in place for each id in `seen`.
pub fn apply_repetition_penalty(logits: &mut [f32], seen: &[u32], penalty: f64) {
    if penalty == 1.0 {
        return;
    }
    let p = penalty as f32;
    let mut done = vec![false; logits.len()];
    for &id in seen {
        let i = id as usize;
        if i < logits.len() && !done[i] {
            done[i] = true;
            logits[i] = if logits[i] < 0.0 {
                logits[i] * p
            } else {
                logits[i] / p
            };
        }
    }
}

/// The next token of one row (after any penalty has been applied).
pub fn choose_token(logits: &[f32], opts: &GenerateOptions, rng: &mut StdRng) -> u32 {
    if opts.temperature <= 0.0 {
        return argmax(logits);
    }
    let mut order = crate::sampling::by_likelihood(logits);
    if opts.top_k > 0 {
        order.truncate(opts.top_k.max(1));
    }
    let u = rng.random::<f64>();
    crate::sampling::nucleus_draw(logits, &order, opts.top_p, opts.temperature, u)
}

/// Index of the largest logit; the first one on ties, as `torch.argmax`.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::GenerateOptions;

    const NON_FINITE: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    #[test]
    fn sampling_numbers_are_finite_and_in_range() {
        type Check = fn(f64) -> Result<f64, String>;
        let rules: [(Check, &[f64], &[f64]); 3] = [
            (
                GenerateOptions::check_temperature,
                &[0.0, 0.7, 100.0],
                &[-0.1],
            ),
            (GenerateOptions::check_top_p, &[0.0, 0.9, 1.0], &[-0.1, 1.5]),
            (
                GenerateOptions::check_repetition_penalty,
                &[1e-3, 1.0, 2.0],
                &[0.0, -1.0],
            ),
        ];
        for (check, good, bad) in rules {
            for &v in good {
                assert_eq!(check(v), Ok(v));
            }
            for &v in bad.iter().chain(&NON_FINITE) {
                let m = check(v).unwrap_err();
                assert!(
                    m.starts_with(&format!("{v} must be a finite number")),
                    "{m}"
                );
            }
        }
        assert_eq!(GenerateOptions::check_max_new_tokens(1), Ok(1));
        assert!(GenerateOptions::check_max_new_tokens(0).is_err());
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(GenerateOptions::default().validate(), Ok(()));
        let o = GenerateOptions {
            temperature: f64::NAN,
            ..GenerateOptions::default()
        };
        assert_eq!(o.validate().unwrap_err().0, "temperature");
        let o = GenerateOptions {
            top_p: -1.0,
            ..GenerateOptions::default()
        };
        assert_eq!(o.validate().unwrap_err().0, "top_p");
        let o = GenerateOptions {
            repetition_penalty: 0.0,
            ..GenerateOptions::default()
        };
        assert_eq!(o.validate().unwrap_err().0, "repetition_penalty");
    }
}
