//! The engine's own CUDA kernels (built with the `cuda` feature), compiled
//! once per process by NVRTC from the source below:
//!
//! - `ift_embed_segment_sum`: the embedding backward over tokens grouped by
//!   id (`embed_grad.rs`): one thread per (id, column), sums in token order.
//! - `ift_dropout_mask`: LoRA's inverted-dropout mask, the same hash of
//!   (seed, element index) as `Lora::dropout_mask` on the CPU, so both devices
//!   draw identical masks and nothing is uploaded per projection.

use std::sync::OnceLock;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

const SOURCE: &str = r#"
extern "C" __global__ void ift_embed_segment_sum(
    const float* dx, const unsigned int* order, const unsigned int* groups,
    float* out, unsigned int hidden, unsigned int n_groups) {
    // groups: n_groups + 1 starts into `order`, then n_groups ids.
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_groups * hidden) return;
    unsigned int g = i / hidden, c = i % hidden;
    float acc = 0.0f;
    for (unsigned int k = groups[g]; k < groups[g + 1]; ++k)
        acc += dx[(size_t)order[k] * hidden + c];
    out[(size_t)groups[n_groups + 1 + g] * hidden + c] = acc;
}

// splitmix64's finaliser of seed ^ f(i): model/lora.rs `mix`, bit for bit.
extern "C" __global__ void ift_dropout_mask(
    float* out, unsigned long long n, unsigned long long seed,
    unsigned int threshold, float keep) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned long long z = seed ^ ((i + 0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    out[i] = (unsigned int)(z >> 32) >= threshold ? keep : 0.0f;
}
"#;

/// The module name the kernels are loaded under on each device.
const MODULE: &str = "ift_engine";

/// The PTX of [`SOURCE`], compiled once per process.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("NVRTC could not compile the engine's CUDA kernels: {e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn launch_config(threads: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((threads as u32).div_ceil(256).max(1), 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `(vocab, hidden)`: `dE[id] = Σ dx[tokens with that id]`, `ids` on the host.
pub fn segment_sum(ids: &[u32], dx: &Tensor, vocab: usize) -> Result<Tensor> {
    let (order, mut groups, group_ids) = super::embed_grad::group_by_id(ids);
    groups.extend(&group_ids);
    let dev = dx.device();
    let packed: Vec<u32> = order.into_iter().chain(groups).collect();
    let n = packed.len();
    let packed = Tensor::from_vec(packed, n, dev)?;
    dx.contiguous()?.apply_op2_no_bwd(
        &packed,
        &SegmentSum {
            vocab,
            tokens: ids.len(),
            n_groups: group_ids.len(),
        },
    )
}

struct SegmentSum {
    vocab: usize,
    tokens: usize,
    n_groups: usize,
}

impl CustomOp2 for SegmentSum {
    fn name(&self) -> &'static str {
        "ift-embed-segment-sum"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("ift-embed-segment-sum runs on CUDA only (the CPU uses index_add)")
    }

    fn cuda_fwd(
        &self,
        dx: &CudaStorage,
        dx_l: &Layout,
        packed: &CudaStorage,
        packed_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let hidden = dx_l.shape().dims2()?.1;
        let dev = dx.device().clone();
        let dx = dx.as_cuda_slice::<f32>()?.slice(dx_l.start_offset()..);
        let packed = packed
            .as_cuda_slice::<u32>()?
            .slice(packed_l.start_offset()..);
        let order = packed.slice(..self.tokens);
        let groups = packed.slice(self.tokens..);
        let out = dev.alloc_zeros::<f32>(self.vocab * hidden)?;
        let f = dev.get_or_load_custom_func("ift_embed_segment_sum", MODULE, ptx()?)?;
        let (h, g) = (hidden as u32, self.n_groups as u32);
        let mut b = f.builder();
        b.arg(&dx);
        b.arg(&order);
        b.arg(&groups);
        b.arg(&out);
        b.arg(&h);
        b.arg(&g);
        unsafe { b.launch(launch_config(self.n_groups * hidden)) }.w()?;
        let out = CudaStorage::wrap_cuda_slice(out, dev);
        Ok((out, Shape::from((self.vocab, hidden))))
    }
}

/// LoRA's dropout mask shaped like `like` (on its CUDA device): `keep` where
/// the hash of (seed, index) clears `threshold`, else 0.
pub fn dropout_mask(like: &Tensor, seed: u64, threshold: u32, keep: f32) -> Result<Tensor> {
    // The op reads only the shape of its argument.
    let shape = like.shape().clone();
    let flat = like.flatten_all()?;
    let mask = flat.apply_op1_no_bwd(&DropoutMask {
        seed,
        threshold,
        keep,
    })?;
    mask.reshape(shape)
}

struct DropoutMask {
    seed: u64,
    threshold: u32,
    keep: f32,
}

impl CustomOp1 for DropoutMask {
    fn name(&self) -> &'static str {
        "ift-dropout-mask"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("ift-dropout-mask runs on CUDA only (the CPU draws it in Rust)")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let n = l.shape().elem_count();
        let dev = s.device().clone();
        let out = unsafe { dev.alloc::<f32>(n) }?;
        let f = dev.get_or_load_custom_func("ift_dropout_mask", MODULE, ptx()?)?;
        let n64 = n as u64;
        let mut b = f.builder();
        b.arg(&out);
        b.arg(&n64);
        b.arg(&self.seed);
        b.arg(&self.threshold);
        b.arg(&self.keep);
        unsafe { b.launch(launch_config(n)) }.w()?;
        Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from(n)))
    }
}
