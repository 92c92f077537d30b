//! Evaluation: held-out loss and scoring sequences.

pub mod generate;
pub mod loss;
pub mod score;
pub mod tasks;

pub use generate::greedy_generate;
pub use loss::{evaluate_loss, EvalLoss};
pub use score::{score_sequences, Score};
