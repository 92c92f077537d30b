//! The policy: a two-layer fully connected network over a fixed state encoding.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::{rngs::StdRng, Rng};
use serde::{Deserialize, Serialize};

use crate::env::N_ACTIONS;
use crate::map::Map;

/// The state encoding `E[s]`, fixed, never trained (IFT's reference also mixes with a
/// frozen embedding copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One-hot of the row followed by one-hot of the column, `nrow + ncol` features (the
    /// default). Cells in the same row or column share features, so what the network
    /// learns on the trained routes spreads to the rest of the grid, the way a language
    /// model's shared embeddings spread it to contexts it never saw.
    Rowcol,
    /// One-hot of the state, `nrow · ncol` features: no sharing between cells except
    /// through the biases (a sensitivity check).
    Onehot,
}

impl Encoding {
    pub fn dim(self, map: &Map) -> usize {
        match self {
            Encoding::Rowcol => map.nrow + map.ncol,
            Encoding::Onehot => map.n_states(),
        }
    }
}

/// `(len(states), dim)` encodings of `states`.
pub fn encode(map: &Map, encoding: Encoding, states: &[usize]) -> Result<Tensor> {
    let dim = encoding.dim(map);
    let mut x = vec![0f32; states.len() * dim];
    for (i, &s) in states.iter().enumerate() {
        match encoding {
            Encoding::Rowcol => {
                x[i * dim + s / map.ncol] = 1.0;
                x[i * dim + map.nrow + s % map.ncol] = 1.0;
            }
            Encoding::Onehot => x[i * dim + s] = 1.0,
        }
    }
    Tensor::from_vec(x, (states.len(), dim), &Device::Cpu)
}

/// `log softmax` over the last axis from primitive ops (`x − max − log Σ exp`), so it
/// records a backward pass; the max is a constant shift and is detached.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// `π(a | x) = softmax(W₂ tanh(W₁ x + b₁) + b₂)`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub w1: Var,
    pub b1: Var,
    pub w2: Var,
    pub b2: Var,
    pub encoding: Encoding,
}

/// PyTorch `nn.Linear`'s default: uniform in `±1/√fan_in`, from the seeded RNG.
fn linear(rng: &mut StdRng, fan_in: usize, fan_out: usize) -> Result<(Var, Var)> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut draw = |n: usize| {
        (0..n)
            .map(|_| rng.random_range(-bound..bound))
            .collect::<Vec<f32>>()
    };
    let w = Var::from_tensor(&Tensor::from_vec(
        draw(fan_in * fan_out),
        (fan_in, fan_out),
        &Device::Cpu,
    )?)?;
    let b = Var::from_tensor(&Tensor::from_vec(draw(fan_out), fan_out, &Device::Cpu)?)?;
    Ok((w, b))
}

impl Policy {
    pub fn new(map: &Map, encoding: Encoding, hidden: usize, rng: &mut StdRng) -> Result<Self> {
        let (w1, b1) = linear(rng, encoding.dim(map), hidden)?;
        let (w2, b2) = linear(rng, hidden, N_ACTIONS)?;
        Ok(Self {
            w1,
            b1,
            w2,
            b2,
            encoding,
        })
    }

    /// An independent copy with the same weights. Cloning a `Var` shares its storage, so a
    /// cloned policy would move whenever the original trains; every row of a reading
    /// fine-tunes its own copy of the same start, and DPO's `π_ref` must stay put.
    pub fn snapshot(&self) -> Result<Self> {
        let copy = |v: &Var| Var::from_tensor(&v.as_tensor().copy()?.detach());
        Ok(Self {
            w1: copy(&self.w1)?,
            b1: copy(&self.b1)?,
            w2: copy(&self.w2)?,
            b2: copy(&self.b2)?,
            encoding: self.encoding,
        })
    }

    /// `states` in this policy's encoding.
    pub fn encode(&self, map: &Map, states: &[usize]) -> Result<Tensor> {
        encode(map, self.encoding, states)
    }

    pub fn vars(&self) -> Vec<Var> {
        vec![
            self.w1.clone(),
            self.b1.clone(),
            self.w2.clone(),
            self.b2.clone(),
        ]
    }

    /// # Shapes
    /// `x`: `(n, encoding dim)` → `(n, 4)` action log-probabilities.
    pub fn log_probs(&self, x: &Tensor) -> Result<Tensor> {
        let h = x
            .matmul(self.w1.as_tensor())?
            .broadcast_add(self.b1.as_tensor())?
            .tanh()?;
        log_softmax(
            &h.matmul(self.w2.as_tensor())?
                .broadcast_add(self.b2.as_tensor())?,
        )
    }

    /// `π(·|s)` for every state of `map` (terminal states included), as plain numbers.
    pub fn probs_table(&self, map: &Map) -> Result<Vec<[f64; N_ACTIONS]>> {
        let states: Vec<usize> = (0..map.n_states()).collect();
        let p = self
            .log_probs(&self.encode(map, &states)?)?
            .exp()?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
        Ok(p.into_iter().map(|r| [r[0], r[1], r[2], r[3]]).collect())
    }
}

/// `log π(a_t | x_t)` for each step. `x`: `(T, d)`, `actions`: `T` → `(T,)`.
pub fn action_logps(policy: &Policy, x: &Tensor, actions: &[usize]) -> Result<Tensor> {
    let idx = Tensor::from_vec(
        actions.iter().map(|&a| a as u32).collect::<Vec<_>>(),
        (actions.len(), 1),
        &Device::Cpu,
    )?;
    policy.log_probs(x)?.gather(&idx, 1)?.squeeze(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_has_softmax_gradient() -> Result<()> {
        // log softmax([0, ln 3]) = [ln 1/4, ln 3/4]; d(Σ_j y_0)/dx = e_0 − softmax = [3/4, −3/4].
        let x = Var::new(&[[0.0f32, 3f32.ln()]], &Device::Cpu)?;
        let y = log_softmax(x.as_tensor())?;
        let v = y.to_vec2::<f32>()?;
        assert!((v[0][0] - 0.25f32.ln()).abs() < 1e-6 && (v[0][1] - 0.75f32.ln()).abs() < 1e-6);
        let g = y.narrow(1, 0, 1)?.sum_all()?.backward()?;
        let g = g.get(x.as_tensor()).unwrap().to_vec2::<f32>()?;
        assert!((g[0][0] - 0.75).abs() < 1e-6 && (g[0][1] + 0.75).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn a_snapshot_does_not_move_when_the_original_trains() -> Result<()> {
        let map = Map::parse("SF\nFG").unwrap();
        let p = Policy::new(
            &map,
            Encoding::Onehot,
            4,
            &mut rand::SeedableRng::seed_from_u64(0),
        )?;
        let copy = p.snapshot()?;
        let before = copy.probs_table(&map)?;
        assert_eq!(before, p.probs_table(&map)?);
        p.b2.set(&(p.b2.as_tensor() + 1.0)?.affine(3.0, 0.0)?)?;
        assert_ne!(p.probs_table(&map)?, before, "the original moved");
        assert_eq!(copy.probs_table(&map)?, before, "the copy did not");
        Ok(())
    }

    #[test]
    fn encoding_is_row_then_column_one_hot() -> Result<()> {
        let map = Map::parse("SF\nFG\nFF").unwrap(); // 3 rows, 2 columns
        let x = encode(&map, Encoding::Rowcol, &[3])?.to_vec2::<f32>()?; // row 1, column 1
        assert_eq!(x, vec![vec![0.0, 1.0, 0.0, 0.0, 1.0]]);
        let x = encode(&map, Encoding::Onehot, &[3])?.to_vec2::<f32>()?;
        assert_eq!(x, vec![vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]);
        Ok(())
    }
}
