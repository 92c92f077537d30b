//! Borrowing a CPU tensor's f32 data as a slice, and filling rows in
//! parallel: the two things every fused CPU kernel needs.

use candle_core::{CpuStorage, Result, Storage, StorageRef, Tensor};
use rayon::prelude::*;

/// A contiguous f32 CPU tensor's data, borrowed for as long as the view lives.
pub struct F32View<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl<'a> F32View<'a> {
    /// Fails (instead of copying) unless `t` is a contiguous f32 CPU tensor;
    /// callers make it contiguous first.
    pub fn new(t: &'a Tensor) -> Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("fused kernel needs a contiguous tensor".into())
        })?;
        if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
            candle_core::bail!("fused kernel needs an f32 CPU tensor, got {:?}", t.dtype());
        }
        Ok(Self { guard, start, end })
    }

    pub fn get(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.end],
            _ => &[], // excluded by `new`
        }
    }
}

thread_local! {
    static PRIMITIVE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every kernel called from this thread on its primitive-op
/// version (the one other devices use), so tests can check the fallback on a
/// CPU against the fused kernels and against the graph path.
pub fn with_primitive_kernels<R>(f: impl FnOnce() -> R) -> R {
    let old = PRIMITIVE.with(|p| p.replace(true));
    let out = f();
    PRIMITIVE.with(|p| p.set(old));
    out
}

/// Whether the fused CPU kernels apply to these tensors (f32 on the CPU);
/// elsewhere each kernel falls back to candle's primitive ops.
pub fn fused(tensors: &[&Tensor]) -> bool {
    !PRIMITIVE.with(|p| p.get())
        && tensors
            .iter()
            .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

/// Splits `out` into rows of `d` and fills them in parallel over candle's
/// thread count on rayon's pool (`f(row_index, row)`). Rows are handed out in contiguous
/// blocks, one per thread, so a row's neighbours stay in one cache.
pub fn par_rows(out: &mut [f32], d: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let threads = candle_core::utils::get_num_threads().max(1);
    let rows = out.len() / d.max(1);
    if threads == 1 || rows < 2 {
        for (r, row) in out.chunks_mut(d.max(1)).enumerate() {
            f(r, row)
        }
        return;
    }
    let per_thread = rows.div_ceil(threads).max(1);
    out.par_chunks_mut(per_thread * d)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (r, row) in chunk.chunks_mut(d).enumerate() {
                f(c * per_thread + r, row)
            }
        });
}

/// The largest `|a − b|` (unit tests of the kernels).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>());
    d.expect("tensors of one shape and dtype")
}
