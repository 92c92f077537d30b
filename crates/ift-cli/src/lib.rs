//! The `ift` binary's subcommand modules, as a library so each can be tested
//! on its own and `main.rs` stays a thin dispatcher.

pub mod canvas;
pub mod compare;
pub mod plot;
