//! The explicit training engine: the decoder's forward pass with exactly the
//! activations its backward needs kept ([`forward_logps`] → [`Tape`]) and a
//! hand-written backward ([`Tape::backward`]) from the gradient of each
//! target token's log-probability to every parameter. Objectives stay small
//! functions of those log-probabilities (their own gradient comes from
//! candle's autograd on `(b, t − 1)` tensors); the `(tokens, vocab)` logits
//! are never materialised (`kernels::vocab`), and the head runs only on the
//! rows whose log-probability the caller wants (`rows.rs`).
//!
//! Every projection may be trainable, frozen or quantised, and may carry a
//! LoRA adapter (`projection.rs`).
//!
//! Objectives that need whole next-token distributions (TDPO) get the
//! `(b, t, vocab)` logits with a tape whose backward starts from their
//! gradient ([`forward_logits_taped`]).
//!
//! The graph-built model (`model/llama.rs`) stays the reference: tests compare
//! this engine's log-probabilities and gradients with it.

mod backward;
mod decode;
mod forward;
// The kernels are the engine's own; the criterion benches time them
// directly, through the `test-hooks` feature their dev-dependency enables.
#[cfg(feature = "test-hooks")]
pub mod kernels;
#[cfg(not(feature = "test-hooks"))]
pub(crate) mod kernels;
mod projection;
mod rows;
mod shared_prefix;
pub(crate) mod view;

pub use backward::EngineGrads;
pub use forward::{
    forward_greedy, forward_greedy_sharing, forward_logits, forward_logits_taped, forward_logps,
    forward_logps_after, Tape,
};
pub use kernels::matmul::{cpu_backend as matmul_backend, matmul};
pub use kernels::vocab::chunk_cols as head_chunk_cols;
pub use rows::Wanted;
pub use shared_prefix::SharedPrefix;
pub use view::with_primitive_kernels;
