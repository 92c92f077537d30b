//! The per-sequence quantities every pairwise objective is a function of.

use candle_core::{DType, Result, Tensor};

/// Summed log-probabilities of the answer tokens of each pair's two sequences,
/// and the answers' token counts.
///
/// # Shapes
/// Every field is `(batch,)`; row `i` of each belongs to pair `i`.
#[derive(Debug, Clone)]
pub struct PairLogps {
    /// `log π(y_w | x) = Σ_t log π(y_w,t | x, y_w,<t)`.
    pub chosen: Tensor,
    /// `log π(y_l | x)`.
    pub rejected: Tensor,
    /// `|y_w|` as f32.
    pub chosen_len: Tensor,
    /// `|y_l|` as f32.
    pub rejected_len: Tensor,
}

impl PairLogps {
    /// Length-averaged log-probabilities `(log π(y_w)/|y_w|, log π(y_l)/|y_l|)`.
    pub fn averaged(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            f32(&self.chosen)?.div(&f32(&self.chosen_len)?)?,
            f32(&self.rejected)?.div(&f32(&self.rejected_len)?)?,
        ))
    }

    /// The same lengths with other log-probabilities (e.g. the reference's).
    pub fn with_logps(&self, chosen: Tensor, rejected: Tensor) -> Self {
        PairLogps {
            chosen,
            rejected,
            chosen_len: self.chosen_len.clone(),
            rejected_len: self.rejected_len.clone(),
        }
    }
}

/// A pairwise objective's output: per-pair losses and the detached implicit rewards.
#[derive(Debug, Clone)]
pub struct PairLoss {
    /// `(batch,)`: each pair's loss; the batch loss is their mean.
    pub losses: Tensor,
    /// `(batch,)`, detached: the objective's implicit reward of the chosen answer.
    pub chosen_rewards: Tensor,
    /// `(batch,)`, detached: the same for the rejected answer.
    pub rejected_rewards: Tensor,
}

impl PairLoss {
    /// The mean of `losses`.
    pub fn mean(&self) -> Result<Tensor> {
        self.losses.mean_all()
    }
}

pub(crate) fn f32(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F32)
}

/// `−(1 − ε)·log σ(z) − ε·log σ(−z)`: the logistic loss with label smoothing `ε`
/// (cDPO's, and SimPO's in TRL), in f32.
pub(crate) fn smoothed_logistic(z: &Tensor, eps: f64) -> Result<Tensor> {
    use super::log_sigmoid::log_sigmoid;
    let pos = log_sigmoid(z)?.affine(-(1.0 - eps), 0.0)?;
    if eps == 0.0 {
        return Ok(pos);
    }
    pos + log_sigmoid(&z.neg()?)?.affine(-eps, 0.0)?
}
