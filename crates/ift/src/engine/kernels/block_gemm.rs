//! A single-threaded `gemm` on raw matrices for the attention kernels'
//! blocks (each a rayon task already), with any row and column strides, so
//! transposes are read in place.

use gemm::{gemm, Parallelism};

/// A matrix operand: its first element and its row and column strides.
#[derive(Clone, Copy)]
pub struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// Row-major with `ld` elements per row.
    pub fn rows(ptr: *const f32, ld: usize) -> Self {
        Self {
            ptr,
            rs: ld as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `ld` elements per row.
    pub fn cols(ptr: *const f32, ld: usize) -> Self {
        Self {
            ptr,
            rs: 1,
            cs: ld as isize,
        }
    }
}

/// `dst (m × n, row-major) = lhs (m × k) · rhs (k × n)`, or `+=` with
/// `accumulate`; single-threaded (the caller is a rayon task).
///
/// # Safety
/// The pointers must address matrices of those extents and strides.
pub unsafe fn gemm_into(
    dst: *mut f32,
    dims: (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
) {
    gemm_scaled(dst, dims, lhs, rhs, accumulate, 1.0)
}

/// `dst = scale · lhs · rhs` (no accumulation): the scale applied to each
/// finished dot product, as multiplying the result after would, without a
/// second pass over `dst`.
///
/// # Safety
/// As [`gemm_into`].
pub unsafe fn gemm_scaled_into(
    dst: *mut f32,
    dims: (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    scale: f32,
) {
    gemm_scaled(dst, dims, lhs, rhs, false, scale)
}

unsafe fn gemm_scaled(
    dst: *mut f32,
    (m, n, k): (usize, usize, usize),
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    scale: f32,
) {
    // gemm: dst = alpha·dst + beta·lhs·rhs, strides given as (column, row).
    gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        accumulate,
        lhs.ptr,
        lhs.cs,
        lhs.rs,
        rhs.ptr,
        rhs.cs,
        rhs.rs,
        if accumulate { 1.0 } else { 0.0 },
        scale,
        false,
        false,
        false,
        Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scale inside the matmul gives the bits of scaling the product
    /// after (a scale that is not a power of two, so rounding would show).
    #[test]
    fn scaling_inside_equals_scaling_after() {
        let (m, n, k) = (64, 100, 48);
        let fill = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919 + seed) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        };
        let (a, b) = (fill(m * k, 1), fill(n * k, 2));
        let scale = 1.0 / (k as f32).sqrt();
        let (mut after, mut inside) = (vec![0f32; m * n], vec![0f32; m * n]);
        // SAFETY: a is m × k and b n × k row-major (read transposed), outputs m × n.
        unsafe {
            let (lhs, rhs) = (Mat::rows(a.as_ptr(), k), Mat::cols(b.as_ptr(), k));
            gemm_into(after.as_mut_ptr(), (m, n, k), lhs, rhs, false);
            gemm_scaled_into(inside.as_mut_ptr(), (m, n, k), lhs, rhs, scale);
        }
        after.iter_mut().for_each(|x| *x *= scale);
        let differ = after
            .iter()
            .zip(&inside)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        assert_eq!(differ, 0, "{differ} of {} differ", m * n);
    }
}
