//! The learning rate as a pure function of the optimizer step: linear warm-up from 0, then
//! constant, linear decay to 0, or half a cosine to 0. The formulas are `transformers`'
//! `get_{constant,linear,cosine}_schedule_with_warmup` lambdas term for term, so a run here and
//! a Hugging Face run with the same settings see the same rate at every step.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::optim::{check_lr, OptimError};

/// What follows the warm-up (`train.schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Hold the base rate.
    Constant,
    /// Decay linearly to 0 at the last step.
    Linear,
    /// Half a cosine from the base rate to 0 at the last step; the IFT paper's schedule, hence
    /// the default.
    #[default]
    Cosine,
}

/// Schedule settings (`train.schedule`, `train.warmup_steps`, `train.warmup_ratio`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Shape of the schedule after warm-up. Default `cosine`, as the IFT paper.
    pub kind: ScheduleKind,
    /// Warm-up length in optimizer steps. When 0, `warmup_ratio` decides. Default 0.
    pub warmup_steps: u64,
    /// Warm-up length as a fraction of the total optimizer steps, rounded up (`transformers`'
    /// rule); used only when `warmup_steps` is 0. Default 0.1, the IFT paper's ratio.
    pub warmup_ratio: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::default(),
            warmup_steps: 0,
            warmup_ratio: 0.1,
        }
    }
}

impl ScheduleConfig {
    /// The range of each setting: `(field, message)` of the first out of
    /// range. `LrSchedule::new` refuses such a config; `TrainConfig::validate`
    /// checks it at parse time under the key of `[train]`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        crate::config::range::within(self.warmup_ratio, 0.0, 1.0)
            .map(|_| ())
            .map_err(|m| ("warmup_ratio", m))
    }
}

/// A resolved schedule: base rate, warm-up and total length fixed.
#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    kind: ScheduleKind,
    base_lr: f64,
    warmup_steps: u64,
    total_steps: u64,
}

/// `transformers`' cosine schedule with its default of half a cycle.
const NUM_CYCLES: f64 = 0.5;

impl LrSchedule {
    /// Resolves `config` for a run of `total_steps` optimizer steps at peak rate `base_lr`.
    pub fn new(
        config: &ScheduleConfig,
        base_lr: f64,
        total_steps: u64,
    ) -> Result<Self, OptimError> {
        check_lr(base_lr).map_err(|_| OptimError::InvalidLr(base_lr))?;
        config
            .validate()
            .map_err(|(name, m)| OptimError::InvalidConfig(format!("`{name}`: {m}")))?;
        let warmup_steps = match config.warmup_steps {
            0 => (total_steps as f64 * config.warmup_ratio).ceil() as u64,
            n => n,
        };
        Ok(Self {
            kind: config.kind,
            base_lr,
            warmup_steps,
            total_steps,
        })
    }

    /// The warm-up length in steps after resolving `warmup_ratio`.
    pub fn warmup_steps(&self) -> u64 {
        self.warmup_steps
    }

    /// The rate for the optimizer step with zero-based index `step` (the first step of a run
    /// with warm-up therefore has rate 0, as in `transformers`' Trainer).
    pub fn lr(&self, step: u64) -> f64 {
        self.base_lr * self.factor(step)
    }

    /// The multiplier of the base rate at `step`; `LambdaLR`'s lambda.
    pub fn factor(&self, step: u64) -> f64 {
        let (step, warmup, total) = (
            step as i64,
            self.warmup_steps as i64,
            self.total_steps as i64,
        );
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let decay_steps = (total - warmup).max(1) as f64;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::Linear => ((total - step) as f64 / decay_steps).max(0.0),
            ScheduleKind::Cosine => {
                let progress = (step - warmup) as f64 / decay_steps;
                // Past the last step `progress` exceeds 1 and the rate rises again: transformers
                // does the same, and the trainer never asks for those steps.
                (0.5 * (1.0 + (PI * NUM_CYCLES * 2.0 * progress).cos())).max(0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup_steps: u64, total: u64) -> LrSchedule {
        let config = ScheduleConfig {
            kind,
            warmup_steps,
            warmup_ratio: 0.0,
        };
        LrSchedule::new(&config, 2.0, total).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn warmup_is_linear_from_zero() {
        let s = schedule(ScheduleKind::Constant, 4, 10);
        let lrs: Vec<f64> = (0..6).map(|k| s.lr(k)).collect();
        assert_eq!(lrs, [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]);
    }

    #[test]
    fn linear_reaches_zero_at_the_end_and_stays() {
        // warm-up 2 of 10: the decay spans 8 steps, factor (10 - k) / 8.
        let s = schedule(ScheduleKind::Linear, 2, 10);
        assert!(close(s.lr(2), 2.0));
        assert!(close(s.lr(6), 2.0 * 4.0 / 8.0));
        assert_eq!(s.lr(10), 0.0);
        assert_eq!(s.lr(12), 0.0);
    }

    #[test]
    fn cosine_hand_values() {
        // No warm-up, 4 steps: progress k/4, factor (1 + cos(pi k / 4)) / 2.
        let s = schedule(ScheduleKind::Cosine, 0, 4);
        let half_sqrt2 = std::f64::consts::FRAC_1_SQRT_2;
        assert!(close(s.lr(0), 2.0));
        assert!(close(s.lr(1), 1.0 + half_sqrt2));
        assert!(close(s.lr(2), 1.0));
        assert!(close(s.lr(3), 1.0 - half_sqrt2));
        assert!(close(s.lr(4), 0.0));
    }

    #[test]
    fn warmup_ratio_rounds_up_and_explicit_steps_win() {
        let ratio = |warmup_steps, warmup_ratio, total| {
            let config = ScheduleConfig {
                kind: ScheduleKind::Linear,
                warmup_steps,
                warmup_ratio,
            };
            LrSchedule::new(&config, 1.0, total).unwrap().warmup_steps()
        };
        assert_eq!(ratio(0, 0.1, 37), 4); // ceil(3.7)
        assert_eq!(ratio(0, 0.1, 40), 4);
        assert_eq!(ratio(7, 0.1, 40), 7);
        assert_eq!(ratio(0, 0.0, 40), 0);
    }

    #[test]
    fn rejects_bad_settings() {
        let config = ScheduleConfig {
            warmup_ratio: 1.5,
            ..ScheduleConfig::default()
        };
        assert!(LrSchedule::new(&config, 1.0, 10).is_err());
        assert!(LrSchedule::new(&ScheduleConfig::default(), f64::NAN, 10).is_err());
    }

    #[test]
    fn warmup_ratio_is_a_finite_share_boundaries_included() {
        let with = |warmup_ratio| ScheduleConfig {
            warmup_ratio,
            ..ScheduleConfig::default()
        };
        for ok in [0.0, 0.5, 1.0] {
            assert_eq!(with(ok).validate(), Ok(()), "{ok}");
            assert!(LrSchedule::new(&with(ok), 1.0, 10).is_ok(), "{ok}");
        }
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (field, message) = with(bad).validate().unwrap_err();
            assert_eq!(field, "warmup_ratio");
            assert_eq!(message, format!("{bad} must be a finite number in [0, 1]"));
            // The schedule refuses it with the same rule.
            let e = LrSchedule::new(&with(bad), 1.0, 10)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&message), "{e}");
        }
    }

    #[test]
    fn config_reads_lowercase_kinds_and_rejects_unknown_keys() {
        let c: ScheduleConfig = serde_json::from_str(r#"{"kind": "linear"}"#).unwrap();
        assert_eq!(
            c,
            ScheduleConfig {
                kind: ScheduleKind::Linear,
                ..ScheduleConfig::default()
            }
        );
        assert!(serde_json::from_str::<ScheduleConfig>(r#"{"warmup": 3}"#).is_err());
    }
}
