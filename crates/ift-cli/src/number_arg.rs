//! Value parsers of the numeric flags: clap answers an error of theirs with
//! `invalid value 'X' for '--flag <V>': MESSAGE` and exit 2, before any file is
//! read. The rules are the library's (`GenerateOptions::check_*`,
//! `EncodeOptions::check_max_length`), said by `ift::config::range`.

use std::fmt::Display;
use std::str::FromStr;

use ift::config::range;
use ift::data::EncodeOptions;
use ift::eval::GenerateOptions;

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))
}

fn count<T: FromStr>(s: &str) -> Result<T, String>
where
    T::Err: Display,
{
    s.trim()
        .parse()
        .map_err(|e| format!("`{s}` is not a whole number >= 0: {e}"))
}

/// A whole number >= 0 (`--top-k`), refused with the same wording as the others.
pub fn whole(s: &str) -> Result<usize, String> {
    count(s)
}

/// `--temperature`: a finite number >= 0 (0: greedy).
pub fn temperature(s: &str) -> Result<f64, String> {
    number(s).and_then(GenerateOptions::check_temperature)
}

/// `--top-p`: in [0, 1].
pub fn top_p(s: &str) -> Result<f64, String> {
    number(s).and_then(GenerateOptions::check_top_p)
}

/// `--repetition-penalty`: a finite number > 0.
pub fn repetition_penalty(s: &str) -> Result<f64, String> {
    number(s).and_then(GenerateOptions::check_repetition_penalty)
}

/// `--max-new-tokens`: at least 1.
pub fn max_new_tokens(s: &str) -> Result<usize, String> {
    count(s).and_then(GenerateOptions::check_max_new_tokens)
}

/// `--max-length`: room for a token and the one it predicts.
pub fn max_length(s: &str) -> Result<usize, String> {
    count(s).and_then(EncodeOptions::check_max_length)
}

/// A count that must be at least 1 (`--batch-size`, `--limit`, `--steps`, ...).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    count(s).and_then(|n| range::count_at_least(n, 1, ""))
}

/// [`at_least_one`] for a `u64` flag.
pub fn at_least_one_u64(s: &str) -> Result<u64, String> {
    count(s).and_then(|n| range::count_at_least(n, 1, ""))
}

/// `ift bench --batch`: the fewest sequences a measured step runs.
pub fn bench_batch(s: &str) -> Result<usize, String> {
    let why = "a DPO step needs a pair";
    count(s).and_then(|n| range::count_at_least(n, crate::bench::MIN_BATCH, why))
}

/// `ift bench --seq`: the shortest sequence a measured step runs.
pub fn bench_seq(s: &str) -> Result<usize, String> {
    count(s).and_then(|n| range::count_at_least(n, crate::bench::MIN_SEQ, ""))
}

/// A share or weight in [0, 1] (`ift frozen-lake --ift-lambda`, `--ift-gamma`).
pub fn unit(s: &str) -> Result<f64, String> {
    number(s).and_then(|v| range::within(v, 0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_out_of_range_numbers_are_refused() {
        for p in [temperature, top_p, repetition_penalty, unit] {
            for bad in ["nan", "NaN", "inf", "-inf", "-1", "x", ""] {
                assert!(p(bad).is_err(), "{bad}");
            }
        }
        assert_eq!(temperature("0"), Ok(0.0));
        assert_eq!(
            temperature("-0.5").unwrap_err(),
            "-0.5 must be a finite number >= 0"
        );
        assert_eq!(
            temperature("nan").unwrap_err(),
            "NaN must be a finite number >= 0"
        );
        assert_eq!(top_p("1"), Ok(1.0));
        assert_eq!(top_p("0"), Ok(0.0));
        assert!(top_p("1.01").is_err());
        assert_eq!(repetition_penalty("1"), Ok(1.0));
        assert!(repetition_penalty("0").is_err());
        assert_eq!(unit("0"), Ok(0.0));
        assert_eq!(unit("1"), Ok(1.0));
        assert!(unit("1.5").is_err());
        assert_eq!(temperature("x").unwrap_err(), "`x` is not a number");
    }

    #[test]
    fn counts_have_their_minimum() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert_eq!(at_least_one("0").unwrap_err(), "0 must be at least 1");
        assert!(at_least_one("-1").is_err());
        assert_eq!(at_least_one_u64("3"), Ok(3));
        assert!(at_least_one_u64("0").is_err());
        assert_eq!(max_new_tokens("1"), Ok(1));
        assert!(max_new_tokens("0").is_err());
        assert_eq!(max_length("2"), Ok(2));
        assert!(max_length("1").is_err());
        assert!(max_length("0").is_err());
    }
}
