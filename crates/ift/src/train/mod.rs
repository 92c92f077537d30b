//! Training: the loop and what it drives once per optimizer step — the
//! objectives' micro-batch losses, the optimizers, the learning-rate
//! schedule, gradient clipping, checkpoints and metrics.

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod evaluate;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod step;
pub mod trainer;

pub use crate::data::kto_kl_sequences;
pub use crate::data::{BatchPlan, StepBatch, StepExamples, TrainData};
pub use crate::methods::{Engine, Policy};
pub use crate::methods::{Reference, StepEnv};
pub use checkpoint::{
    latest_checkpoint, read_checkpoint, read_state, save_checkpoint, TrainerState, CONFIG_FILE,
};
pub use clip::{clip_grad_norm, global_grad_norm, ClipOutcome};
pub use config::{TrainConfig, TrainDtype};
pub use evaluate::{evaluate_objective, ObjectiveEval};
pub use metrics::{MetricsWriter, StepMetrics, METRICS_FILE};
pub use optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::{LrSchedule, ScheduleConfig, ScheduleKind};
pub use step::{forward_backward, step_passes, target_mask, StepContext, StepPasses, PAD_ID};
pub use trainer::{batch_plan, train, Observer, Run, RunEnd};
