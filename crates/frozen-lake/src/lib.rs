//! The IFT paper's explainable Frozen Lake experiment (see `docs/frozen-lake.md`).
