//! A stop asked for by the user (SIGINT, SIGTERM): process-wide, as a signal
//! is. The `ift` binary's signal handler calls [`request`]; every long pass
//! of the library (a training step's micro-batches, evaluation, the
//! reference pass, scoring, generation) calls [`check`] between its batches
//! and returns [`Error::Interrupted`] within one batch, so a stop is honoured
//! in every phase within about a batch's time. The training loop turns that
//! into a checkpoint (`crate::train::trainer`).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Asks every long pass of this process to stop at its next batch.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// `Err(Error::Interrupted)` once a stop was asked for; `what` names the
/// pass for the message ("the reference pass", "evaluation").
pub fn check(what: &str) -> Result<()> {
    match requested() {
        true => Err(Error::Interrupted(format!("interrupted during {what}"))),
        false => Ok(()),
    }
}

/// Clears a request (tests, and a library user that handled one).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
