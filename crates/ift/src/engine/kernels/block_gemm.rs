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
