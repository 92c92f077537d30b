//! A frozen base kept quantised in memory (QLoRA-style, `model.quantize`):
//! candle's quantised matmul for the forward, and — since candle's `QMatMul`
//! records no backward — a custom op whose backward gives the input gradient
//! `dX = dY · W` from the quantised weights, dequantised a block of rows at a
//! time, so the gradient reaches the LoRA adapters below. The weights
//! themselves never get a gradient (they are frozen).

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use serde::{Deserialize, Serialize};

/// `model.quantize`: how the frozen projections are held in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quantize {
    /// f32, as on disk after upcasting (default).
    #[default]
    #[serde(rename = "none")]
    None,
    /// llama.cpp's Q8_0: blocks of 32 int8 with one f16 scale (8.5 bits per weight).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// llama.cpp's Q4_K: 256-weight super-blocks of 4-bit values (4.5 bits per
    /// weight). Rows whose length is not a multiple of 256 fall back to Q4_0
    /// (32-weight blocks, 4.5 bits), as llama.cpp's quantiser also falls back.
    #[serde(rename = "q4_k")]
    Q4K,
}

impl Quantize {
    /// The GGML type for a row of `row_len` weights; `None` for `none`, and
    /// for a row that is not a whole number of 32-weight blocks (kept f32:
    /// candle's kernels need whole blocks).
    pub fn ggml_type(self, row_len: usize) -> Option<GgmlDType> {
        if !row_len.is_multiple_of(32) {
            return None;
        }
        match self {
            Quantize::None => None,
            Quantize::Q8_0 => Some(GgmlDType::Q8_0),
            Quantize::Q4K if row_len.is_multiple_of(GgmlDType::Q4K.block_size()) => {
                Some(GgmlDType::Q4K)
            }
            Quantize::Q4K => Some(GgmlDType::Q4_0),
        }
    }
}

/// A frozen `(out, in)` matrix in a GGML block format.
#[derive(Clone)]
pub struct QuantizedWeight {
    q: Arc<QTensor>,
    /// Only in [`super::llama::LlamaForCausalLM::with_autograd_quantized_backward`]'s
    /// copy: the dequantised matrix whose plain matmul gives the graph its
    /// input gradient instead of `QMatMulOp`.
    autograd: Option<Tensor>,
}

impl std::fmt::Debug for QuantizedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantizedWeight({:?}, {:?})",
            self.q.dtype(),
            self.q.shape()
        )
    }
}

/// Dequantised rows per block in the backward: about 4 MiB of f32 at a time.
const BLOCK_ELEMS: usize = 1 << 20;

impl QuantizedWeight {
    /// Quantises the f32 `(out, in)` matrix `w` to `dtype`.
    pub fn quantize(w: &Tensor, dtype: GgmlDType) -> Result<Self> {
        Ok(Self::from_qtensor(QTensor::quantize(w, dtype)?))
    }

    /// Wraps an already quantised `(out, in)` tensor (e.g. read from a GGUF file).
    pub fn from_qtensor(q: QTensor) -> Self {
        QuantizedWeight {
            q: Arc::new(q),
            autograd: None,
        }
    }

    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.q.shape().dims();
        (d[0], d[1])
    }

    pub fn dtype(&self) -> GgmlDType {
        self.q.dtype()
    }

    /// Bytes the quantised matrix occupies.
    pub fn size_in_bytes(&self) -> usize {
        self.q.storage_size_in_bytes()
    }

    /// The whole matrix in f32 (merging, tests).
    pub fn dequantize(&self, device: &Device) -> Result<Tensor> {
        self.q.dequantize(device)
    }

    /// `x Wᵀ` for `x` `(rows, in)`; differentiable in `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        match &self.autograd {
            None => x.apply_op1(QMatMulOp { q: self.q.clone() }),
            // candle's quantised matmul, recording nothing, plus `z − z`:
            // exactly zero (so the value is the kernel's, bit for bit), with
            // the gradient of `z = x Wᵀ`, which candle's autograd computes.
            Some(w) => {
                let y = x.apply_op1_no_bwd(self.q.as_ref())?;
                let z = x.matmul(&w.t()?)?;
                y + (&z - z.detach())?
            }
        }
    }

    /// `dX = dY · W` for `dY` `(rows, out)`: the input gradient of
    /// [`Self::forward`], summed over blocks of W's rows dequantised in turn.
    pub fn input_grad(&self, dy: &Tensor) -> Result<Tensor> {
        let (out, inp) = self.dims();
        let step = (BLOCK_ELEMS / inp).max(1);
        let mut dx: Option<Tensor> = None;
        for r0 in (0..out).step_by(step) {
            let n = step.min(out - r0);
            let block = self.dequantize_rows(r0, n, dy.device())?;
            let part = dy.narrow(1, r0, n)?.contiguous()?.matmul(&block)?;
            dx = Some(match dx {
                Some(acc) => (acc + part)?,
                None => part,
            });
        }
        dx.ok_or_else(|| candle_core::Error::Msg("quantised matrix with no rows".into()))
    }

    /// Rows `r0..r0 + n` of the matrix in f32, `(n, in)`.
    fn dequantize_rows(&self, r0: usize, n: usize, device: &Device) -> Result<Tensor> {
        let (out, inp) = self.dims();
        let dtype = self.q.dtype();
        let data = self.q.data()?;
        let row_bytes = data.len() / out;
        debug_assert_eq!(row_bytes, inp / dtype.block_size() * dtype.type_size());
        let bytes = &data[r0 * row_bytes..(r0 + n) * row_bytes];
        let storage = QStorage::from_data(Cow::Borrowed(bytes), &Device::Cpu, dtype)?;
        QTensor::new(storage, (n, inp))?.dequantize(device)
    }
}

/// The quantised matmul as a custom op, so the graph reaches its input.
struct QMatMulOp {
    q: Arc<QTensor>,
}

impl CustomOp1 for QMatMulOp {
    fn name(&self) -> &'static str {
        "qmatmul-with-input-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        CustomOp1::cpu_fwd(self.q.as_ref(), storage, layout)
    }

    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        CustomOp1::cuda_fwd(self.q.as_ref(), storage, layout)
    }

    fn metal_fwd(
        &self,
        storage: &candle_core::MetalStorage,
        layout: &Layout,
    ) -> Result<(candle_core::MetalStorage, Shape)> {
        CustomOp1::metal_fwd(self.q.as_ref(), storage, layout)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let w = QuantizedWeight {
            q: self.q.clone(),
            autograd: None,
        };
        Ok(Some(w.input_grad(grad)?))
    }
}

impl super::llama::LlamaForCausalLM {
    /// Replaces every frozen dense projection weight with its `kind`
    /// quantisation (the f32 copy is dropped); embeddings, norms and `lm_head`
    /// stay f32, as in QLoRA. Returns the bytes the projections now take.
    pub fn quantize_base(&mut self, kind: Quantize) -> crate::Result<usize> {
        let mut params = std::mem::take(&mut self.params);
        let trainable: Vec<String> = params.vars().iter().map(|(n, _)| n.clone()).collect();
        let mut bytes = 0;
        for (module, _, lin) in self.projections_mut() {
            let name = format!("{module}.weight");
            if let super::layers::Weight::Dense(w) | super::layers::Weight::Frozen(w) = &lin.weight
            {
                let Some(dtype) = kind.ggml_type(w.dim(1)?) else {
                    continue;
                };
                if trainable.contains(&name) {
                    return Err(crate::Error::Train(format!(
                        "{name}: a trainable weight cannot be quantised (model.quantize needs adapter.kind = \"lora\")"
                    )));
                }
                lin.weight = super::layers::Weight::Quantized(QuantizedWeight::quantize(w, dtype)?);
                params.remove(&name);
            }
            if let super::layers::Weight::Quantized(q) = &lin.weight {
                bytes += q.size_in_bytes();
            }
        }
        self.params = params;
        Ok(bytes)
    }

    /// Whether any projection is held quantised.
    pub fn is_quantized(&self) -> bool {
        self.layers
            .iter()
            .any(|l| l.projections().iter().any(|p| p.dense_weight().is_none()))
    }
}

impl super::llama::LlamaForCausalLM {
    /// The same model with every quantised projection dequantised back to
    /// f32 (frozen): the dense model a quantised one approximates, to compare with.
    pub fn dequantized_base(&self) -> crate::Result<Self> {
        let mut model = self.clone();
        for (_, _, lin) in model.projections_mut() {
            if let super::layers::Weight::Quantized(q) = &lin.weight {
                let device = lin
                    .bias
                    .as_ref()
                    .map_or(Device::Cpu, |b| b.device().clone());
                lin.weight = super::layers::Weight::Frozen(q.dequantize(&device)?);
            }
        }
        Ok(model)
    }

    /// The same model whose quantised projections compute the same forward,
    /// bit for bit (candle's quantised matmul), but whose graph takes their
    /// input gradient from candle's autograd over a plain matmul with the
    /// dequantised matrix instead of the custom op's backward
    /// ([`QuantizedWeight::input_grad`]): the reference that backward is
    /// checked against (`tests/lora_quantized.rs`). The explicit engine,
    /// which records no graph, still calls `input_grad`.
    pub fn with_autograd_quantized_backward(&self) -> crate::Result<Self> {
        let mut model = self.clone();
        for (_, _, lin) in model.projections_mut() {
            if let super::layers::Weight::Quantized(q) = &mut lin.weight {
                q.autograd = Some(q.q.dequantize(&q.q.device())?);
            }
        }
        Ok(model)
    }
}
