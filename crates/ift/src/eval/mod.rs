//! Evaluation: scoring sequences.

pub mod score;

pub use score::{score_sequences, Score, ScoredSequence};
