//! The crate's error type.

/// What can go wrong setting up or running the experiment.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// A map's text is malformed or unusable.
    #[error("bad map: {0}")]
    Map(String),
    /// The map has no route of the kind the experiment needs (e.g. Gymnasium's 4×4:
    /// every loop-free way to its goal is a shortest one, so none is sub-optimal).
    #[error("no {0} route to the goal on this map; the experiment needs a strictly worse second route (try --map route)")]
    NoRoute(&'static str),
    /// Slippery ice (reading 4): no sampled episode of the needed kind.
    #[error("no {what} in {tries} sampled episodes on this map; the slippery reading needs both a success of the optimal policy and a failure of the no-slip one")]
    NoEpisode { what: &'static str, tries: usize },
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("writing {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding PNG: {0}")]
    Png(#[from] png::EncodingError),
}
