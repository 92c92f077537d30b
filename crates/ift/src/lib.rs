//! `ift`: Intuitive Fine-Tuning and its baselines for Llama-family decoders.

pub mod loss;
