//! Training: the optimizers, the learning-rate schedule and global-norm gradient clipping that
//! the training loop drives once per optimizer step.

pub mod clip;
pub mod optim;
pub mod schedule;

pub use clip::{clip_grad_norm, global_grad_norm, ClipOutcome};
pub use optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::{LrSchedule, ScheduleConfig, ScheduleKind};
