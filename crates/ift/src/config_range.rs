//! The shape of every numeric rule: a setting of a run config or a number on
//! the command line is finite and within its bounds. Each check returns the
//! value, or a message that starts with the value (`-1 must be a finite number
//! >= 0`) for the caller to prefix with the key (`train.lr`) or the flag
//! (`--temperature`), so one wording serves both. The rules themselves live
//! beside what they guard (`OptimizerConfig::validate`, `ScheduleConfig::validate`,
//! `GenerateOptions::validate`, ...); these only say them.

use std::fmt::Display;

fn finite(v: f64, ok: bool, range: std::fmt::Arguments) -> Result<f64, String> {
    match v.is_finite() && ok {
        true => Ok(v),
        false => Err(format!("{v} must be a finite number {range}")),
    }
}

/// Finite and `>= lo`.
pub fn at_least(v: f64, lo: f64) -> Result<f64, String> {
    finite(v, v >= lo, format_args!(">= {lo}"))
}

/// Finite and `> lo`.
pub fn above(v: f64, lo: f64) -> Result<f64, String> {
    finite(v, v > lo, format_args!("> {lo}"))
}

/// Finite and in `[lo, hi]`.
pub fn within(v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    finite(v, lo <= v && v <= hi, format_args!("in [{lo}, {hi}]"))
}

/// Finite and in `[lo, hi)`.
pub fn within_below(v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    finite(v, lo <= v && v < hi, format_args!("in [{lo}, {hi})"))
}

/// Finite and in `(lo, hi]`.
pub fn within_above(v: f64, lo: f64, hi: f64) -> Result<f64, String> {
    finite(v, lo < v && v <= hi, format_args!("in ({lo}, {hi}]"))
}

/// A count (steps, tokens, records) of at least `lo`; `why` says what a
/// smaller one would mean (may be empty).
pub fn count_at_least<T: PartialOrd + Display + Copy>(n: T, lo: T, why: &str) -> Result<T, String> {
    match n >= lo {
        true => Ok(n),
        false if why.is_empty() => Err(format!("{n} must be at least {lo}")),
        false => Err(format!("{n} must be at least {lo} ({why})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD: [f64; 3] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

    #[test]
    fn non_finite_values_fail_every_rule() {
        for v in BAD {
            assert!(at_least(v, 0.0).is_err(), "{v}");
            assert!(above(v, 0.0).is_err(), "{v}");
            assert!(within(v, 0.0, 1.0).is_err(), "{v}");
            assert!(within_below(v, 0.0, 1.0).is_err(), "{v}");
            assert!(within_above(v, 0.0, 1.0).is_err(), "{v}");
        }
        assert_eq!(
            at_least(f64::NAN, 0.0).unwrap_err(),
            "NaN must be a finite number >= 0"
        );
        assert_eq!(
            at_least(f64::INFINITY, 0.0).unwrap_err(),
            "inf must be a finite number >= 0"
        );
    }

    #[test]
    fn bounds_are_inclusive_or_exclusive_as_named() {
        assert_eq!(at_least(0.0, 0.0), Ok(0.0));
        assert_eq!(
            at_least(-1.0, 0.0).unwrap_err(),
            "-1 must be a finite number >= 0"
        );
        assert_eq!(
            above(0.0, 0.0).unwrap_err(),
            "0 must be a finite number > 0"
        );
        assert_eq!(above(1e-300, 0.0), Ok(1e-300));
        assert_eq!(within(0.0, 0.0, 1.0), Ok(0.0));
        assert_eq!(within(1.0, 0.0, 1.0), Ok(1.0));
        assert_eq!(
            within(2.0, 0.0, 1.0).unwrap_err(),
            "2 must be a finite number in [0, 1]"
        );
        assert_eq!(within_below(0.0, 0.0, 1.0), Ok(0.0));
        assert_eq!(
            within_below(1.0, 0.0, 1.0).unwrap_err(),
            "1 must be a finite number in [0, 1)"
        );
        assert_eq!(within_above(1.0, 0.0, 1.0), Ok(1.0));
        assert_eq!(
            within_above(0.0, 0.0, 1.0).unwrap_err(),
            "0 must be a finite number in (0, 1]"
        );
        assert_eq!(
            within_above(-0.5, 0.0, 1.0).unwrap_err(),
            "-0.5 must be a finite number in (0, 1]"
        );
    }

    #[test]
    fn counts_name_their_minimum() {
        assert_eq!(count_at_least(1usize, 1, ""), Ok(1));
        assert_eq!(
            count_at_least(0usize, 1, "").unwrap_err(),
            "0 must be at least 1"
        );
        assert_eq!(
            count_at_least(0u64, 1, "why").unwrap_err(),
            "0 must be at least 1 (why)"
        );
    }
}
