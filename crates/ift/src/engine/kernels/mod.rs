//! The fused kernels of the explicit engine. Each has a CPU kernel over f32
//! slices and a fallback from candle's primitive ops (any device, and the
//! reference its tests compare against: `engine::view::with_primitive_kernels`
//! runs the whole engine on the fallbacks).

pub mod attention;
pub mod attention_backward;
mod block_gemm;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod embed_grad;
pub mod matmul;
pub mod norm;
pub mod rope;
pub mod simd;
pub mod softmax;
pub mod swiglu;
pub mod vocab;
