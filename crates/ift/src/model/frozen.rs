//! The matmul of a frozen dense weight, recording the input gradient only.
//!
//! candle's `Matmul` backward computes (and keeps) the gradient of both
//! operands even when the weight is a plain frozen tensor, so with LoRA every
//! frozen projection and the vocabulary head would still cost a full-size
//! weight gradient per micro-batch — the memory and time LoRA should save.
//! This op computes `x Wᵀ` with the same CPU kernel and `dX = dY · W` only.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

/// `x Wᵀ` for `x` `(rows, in)` and the frozen `w` `(out, in)`, differentiable in `x` only.
pub(crate) fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !w.device().is_cpu() {
        // Other backends: the plain matmul, with the weight detached.
        return x.matmul(&w.detach().t()?);
    }
    x.contiguous()?.apply_op1(FrozenMatMul { w: w.detach() })
}

struct FrozenMatMul {
    w: Tensor,
}

impl CustomOp1 for FrozenMatMul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = layout.shape().dims2()?;
        let (n, _) = self.w.dims2()?;
        let (w, w_layout) = self.w.storage_and_layout();
        let Storage::Cpu(w) = &*w else {
            candle_core::bail!("frozen-matmul: the weight is not on the CPU")
        };
        let wt = w_layout.transpose(0, 1)?; // (in, out)
        let out = storage.matmul(w, (1, m, n, k), layout, &wt)?;
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}
