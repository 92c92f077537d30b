//! PNG pictures of an experiment, drawn pixel by pixel (no font or system library needed).

mod canvas;
mod charts;
mod curves;
mod font;
mod grid;

use std::path::{Path, PathBuf};

pub use canvas::Canvas;

use crate::error::LakeError;
use crate::experiment::ExperimentResult;

/// Writes `policies.png`, `visits.png` and `mse_curves.png` into `dir`; returns their paths.
pub fn write_pictures(result: &ExperimentResult, dir: &Path) -> Result<Vec<PathBuf>, LakeError> {
    let pictures = [
        ("policies.png", charts::policies(result)),
        ("visits.png", charts::visits(result)),
        ("mse_curves.png", charts::mse_curves(result)),
    ];
    let mut paths = vec![];
    for (name, canvas) in pictures {
        let path = dir.join(name);
        canvas.save_png(&path)?;
        paths.push(path);
    }
    Ok(paths)
}
