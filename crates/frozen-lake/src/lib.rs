//! The IFT paper's explainable Frozen Lake experiment (see `docs/frozen-lake.md`).

pub mod env;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod map;
pub mod methods;
pub mod picture;
pub mod policy;
pub mod train;
pub mod trajectory;
pub mod value_iteration;

pub use env::{FrozenLake, StepResult};
pub use error::LakeError;
pub use map::{Map, Tile};
pub use trajectory::Trajectory;
