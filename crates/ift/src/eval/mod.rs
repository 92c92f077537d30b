//! Evaluation: held-out loss, scoring sequences, and generation.

pub mod generate;
pub mod loss;
pub mod sampling;
pub mod score;
pub mod stream;
pub mod tasks;

pub use generate::{generate, greedy_generate};
pub use loss::{evaluate_loss, EvalLoss};
pub use sampling::GenerateOptions;
pub use score::{score_sequences, Score};
pub use stream::{default_stop_ids, TextStream};
