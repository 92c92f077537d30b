//! Training: the loop and what it drives once per optimizer step — the
//! objectives' micro-batch losses, the optimizers, the learning-rate
//! schedule, gradient clipping, checkpoints and metrics.

pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod examples;
pub mod metrics;
pub mod objectives;
pub mod optim;
pub mod order;
pub mod policy;
pub mod schedule;
pub mod step;
pub mod trainer;

pub use checkpoint::{
    latest_checkpoint, read_checkpoint, read_state, save_checkpoint, TrainerState, CONFIG_FILE,
};
pub use clip::{clip_grad_norm, global_grad_norm, ClipOutcome};
pub use config::{TrainConfig, TrainDtype};
pub use examples::{StepBatch, StepExamples, TrainData};
pub use metrics::{MetricsWriter, StepMetrics, METRICS_FILE};
pub use objectives::{kto_kl_sequences, Reference, StepEnv};
pub use optim::{OptimError, Optimizer, OptimizerConfig, OptimizerKind};
pub use order::BatchPlan;
pub use policy::{Engine, Policy};
pub use schedule::{LrSchedule, ScheduleConfig, ScheduleKind};
pub use step::{forward_backward, step_passes, target_mask, StepContext, StepPasses, PAD_ID};
pub use trainer::{batch_plan, train, Observer, Run, RunEnd};
