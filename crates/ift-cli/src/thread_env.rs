//! Defaults for the thread pools' environment variables, set before any
//! tensor work starts a thread; a value the user set always wins.
//!
//! candle 0.11 runs its element-wise ops on its own pool (`CANDLE_NUM_THREADS`
//! workers) beside rayon's (`RAYON_NUM_THREADS`, the matrix products and the
//! engine's kernels). After each op its workers spin
//! `CANDLE_BARRIER_POOL_SPIN_LIMIT` times (default 25,000 `pause`s, roughly
//! half a millisecond by Zen 2's cycle count per `pause`) before parking, and on a machine
//! whose cores rayon keeps busy that spinning takes the cores from the next
//! matrix product. The paths built from many small candle ops pay for it: the
//! key/value-cache forward of multiple-choice scoring and generation. On the
//! 2-core test machine, 120 ARC-Easy questions on SmolLM2-135M took 25.8 /
//! 29.4 / 27.3 s of wall time with the default and 20.8 / 22.3 / 21.3 s with
//! 1,000 spins (18.3–22.8 s with none), alternating runs; the explicit
//! engine's training step did not change (it makes few candle ops).

/// candle's pool spins this many times after an op before parking.
const CANDLE_SPIN_LIMIT: &str = "1000";

/// Applies the defaults above. Call first in `main`, while no other thread runs.
pub fn set_defaults() {
    set_default("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
}

/// Sets `name` to `value` unless it is already set (to anything, even empty);
/// returns whether it did. Only before the process starts threads that read
/// the environment from C (`setenv` is not thread-safe there).
pub fn set_default(name: &str, value: &str) -> bool {
    if std::env::var_os(name).is_some() {
        return false;
    }
    std::env::set_var(name, value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_the_user_set_wins() {
        // Names no library reads, so these tests touch nothing else.
        let name = "IFT_TEST_THREAD_ENV_USER_SET";
        std::env::set_var(name, "7");
        assert!(!set_default(name, "1"));
        assert_eq!(std::env::var(name).as_deref(), Ok("7"));
        std::env::set_var(name, "");
        assert!(!set_default(name, "1"));
        assert_eq!(std::env::var(name).as_deref(), Ok(""));
    }

    #[test]
    fn the_defaults_reach_candles_variable() {
        let name = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
        let before = std::env::var_os(name);
        set_defaults();
        let expected = before.unwrap_or_else(|| CANDLE_SPIN_LIMIT.into());
        assert_eq!(std::env::var_os(name), Some(expected));
    }

    #[test]
    fn an_unset_variable_gets_the_default() {
        let name = "IFT_TEST_THREAD_ENV_UNSET";
        std::env::remove_var(name);
        assert!(set_default(name, "1000"));
        assert_eq!(std::env::var(name).as_deref(), Ok("1000"));
        assert!(!set_default(name, "5"));
        assert_eq!(std::env::var(name).as_deref(), Ok("1000"));
    }
}
