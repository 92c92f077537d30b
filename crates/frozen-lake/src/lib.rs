//! The IFT paper's explainable Frozen Lake experiment (see `docs/frozen-lake.md`), under
//! each reading of its set-up (`setup`).

pub mod data;
pub mod env;
pub mod episode;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod ift_method;
pub mod map;
pub mod methods;
pub mod picture;
pub mod policy;
pub mod pretrain;
pub mod report;
pub mod setup;
pub mod train;
pub mod trajectory;
pub mod value_iteration;

pub use env::{FrozenLake, StepResult};
pub use error::LakeError;
pub use map::{Map, Tile};
pub use setup::Setup;
pub use trajectory::Trajectory;
