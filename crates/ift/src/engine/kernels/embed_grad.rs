//! The embedding's backward, `dE[id] += dx[token]` for every token.
//!
//! On the CPU this is candle's `index_add`. On CUDA, candle's `index_add`
//! kernel gives each of the `hidden` columns one thread that walks every
//! token in turn, so a step's 16 k tokens run serially. Here the token
//! indices are sorted by id on the host (the ids were read there before the
//! forward queued any work, `Tape::host_ids`), and one GPU thread per
//! (distinct id, column) sums that id's tokens in token order: parallel over
//! ids × columns, and deterministic (no float atomics), so a GPU run repeats
//! bit for bit.

use candle_core::{Result, Tensor};

/// `(vocab, hidden)` f32: the gradient of the embedding rows given `dx`
/// `(tokens, hidden)` f32 and the token ids `(tokens,)`.
pub fn embedding_backward(
    ids: &Tensor,
    host_ids: Option<&[u32]>,
    dx: &Tensor,
    vocab: usize,
) -> Result<Tensor> {
    let hidden = dx.dim(1)?;
    match (dx.device().is_cuda(), host_ids) {
        #[cfg(feature = "cuda")]
        (true, Some(h)) => cuda::segment_sum(h, dx, vocab),
        _ => Tensor::zeros((vocab, hidden), dx.dtype(), dx.device())?.index_add(ids, dx, 0),
    }
}

/// Tokens grouped by id, in token order within each group: `order` (token
/// indices) and, per group, its start in `order` (plus a final end) and id.
pub fn group_by_id(ids: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| (ids[i as usize], i)); // stable: token order within an id
    let (mut starts, mut group_ids) = (Vec::new(), Vec::new());
    for (k, &i) in order.iter().enumerate() {
        let id = ids[i as usize];
        if group_ids.last() != Some(&id) {
            starts.push(k as u32);
            group_ids.push(id);
        }
    }
    starts.push(order.len() as u32);
    (order, starts, group_ids)
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::OnceLock;

    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::WrapErr;
    use candle_core::{CpuStorage, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};

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
"#;

    /// The PTX of [`SOURCE`], compiled by NVRTC once per process.
    fn ptx() -> Result<&'static str> {
        static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
        PTX.get_or_init(|| {
            candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SOURCE)
                .map(|p| p.to_src())
                .map_err(|e| format!("NVRTC could not compile the embedding backward: {e:?}"))
        })
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(e.clone()))
    }

    pub fn segment_sum(ids: &[u32], dx: &Tensor, vocab: usize) -> Result<Tensor> {
        let (order, mut groups, group_ids) = super::group_by_id(ids);
        groups.extend(&group_ids);
        let dev = dx.device();
        let order = Tensor::from_vec(order, ids.len(), dev)?;
        let n = groups.len();
        let groups = Tensor::new(groups, dev)?.reshape(n)?;
        let packed = Tensor::cat(&[&order, &groups], 0)?;
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
            let func = dev.get_or_load_custom_func("ift_embed_segment_sum", "ift_embed", ptx()?)?;
            let threads = (self.n_groups * hidden) as u32;
            let cfg = LaunchConfig {
                grid_dim: (threads.div_ceil(256).max(1), 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            let (h, g) = (hidden as u32, self.n_groups as u32);
            let mut b = func.builder();
            b.arg(&dx);
            b.arg(&order);
            b.arg(&groups);
            b.arg(&out);
            b.arg(&h);
            b.arg(&g);
            unsafe { b.launch(cfg) }.w()?;
            Ok((
                CudaStorage::wrap_cuda_slice(out, dev),
                Shape::from((self.vocab, hidden)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_token_order_within_an_id() {
        let (order, starts, ids) = group_by_id(&[5, 2, 5, 9, 2, 5]);
        assert_eq!(ids, vec![2, 5, 9]);
        assert_eq!(starts, vec![0, 2, 5, 6]);
        assert_eq!(order, vec![1, 4, 0, 2, 5, 3]);
        assert_eq!(group_by_id(&[]), (vec![], vec![0], vec![]));
    }
}
