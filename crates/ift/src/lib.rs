//! `ift`: Intuitive Fine-Tuning and its baselines for Llama-family decoders.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod adapter;
pub mod atomic;
pub mod config;
pub mod data;
pub mod device;
pub mod engine;
pub mod error;
pub mod eval;
pub mod interrupt;
pub mod lock;
pub mod loss;
pub mod methods;
pub mod model;
pub mod objective;
pub mod reference;
pub mod resume;
pub mod run;
pub mod sampling;
pub mod tokenizer;
pub mod train;

pub use error::{Error, ErrorClass, Result};
