//! Every matmul of the explicit engine, `a · b` over `(…, m, k) × (…, k, n)`.
//!
//! By default this is candle's matmul (the `gemm` crate on the CPU, cuBLAS on
//! CUDA). With the `openblas` feature, f32 CPU matmuls go to OpenBLAS's
//! `cblas_sgemm` instead, linked statically (`build.rs`), because on the
//! step's shapes it measured faster than `gemm` on an AVX2 CPU (figures in
//! scripts/bench/README.md). Transposed operands (`w.t()`, `dy.t()`) are
//! passed as BLAS transposes and batch elements by their offsets (a
//! broadcast batch too), so no operand is copied; a layout BLAS cannot take
//! (neither of the last two dims unit-strided, ranks or batches that differ)
//! goes to candle, which copies or refuses as it always did.

use candle_core::{Result, Tensor};

/// `a · b`, as [`Tensor::matmul`].
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "openblas")]
    if let Some(out) = blas::try_matmul(a, b)? {
        return Ok(out);
    }
    a.matmul(b)
}

/// `c + a · b` for 2-d operands. With `openblas`, an f32 CPU `c` that is
/// contiguous and not a view is updated in place by `sgemm`'s `β = 1` (no
/// product tensor, no separate add): `c` must be a temporary its caller owns
/// alone (a fresh kernel output), since every clone of it sees the update.
pub fn matmul_add(c: Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "openblas")]
    if blas::try_matmul_add(&c, a, b)? {
        return Ok(c);
    }
    c + matmul(a, b)?
}

/// `r + a · b` as a new tensor, `r` untouched (a residual connection around
/// a projection). With `openblas`, `r` is copied into the output and the
/// product accumulated onto it (`β = 1`): one pass fewer than zeroing the
/// product's output and adding after.
pub fn residual_matmul(r: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if cfg!(feature = "openblas") && crate::engine::view::fused(&[r, a, b]) {
        return matmul_add(r.copy()?, a, b);
    }
    r + matmul(a, b)?
}

/// Which matmul backend the CPU uses (`ift bench` reports it).
pub fn cpu_backend() -> &'static str {
    if cfg!(feature = "openblas") {
        "openblas"
    } else {
        "gemm"
    }
}

#[cfg(feature = "openblas")]
mod blas {
    use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

    use rayon::prelude::*;

    use crate::engine::view::fused;

    extern "C" {
        #[allow(clippy::too_many_arguments)]
        fn cblas_sgemm(
            layout: i32,
            trans_a: i32,
            trans_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        fn openblas_set_num_threads(n: i32);
    }
    const ROW_MAJOR: i32 = 101;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    /// How BLAS reads one operand's last two dims: transposed or not, and
    /// the leading dimension of the stored matrix. `None`: BLAS cannot.
    fn operand(dims: &[usize], stride: &[usize]) -> Option<(bool, usize)> {
        let n = dims.len();
        let (r, c, sr, sc) = (dims[n - 2], dims[n - 1], stride[n - 2], stride[n - 1]);
        if c == 1 || sc == 1 {
            let ld = if r == 1 { c } else { sr };
            if ld >= c {
                return Some((false, ld));
            }
        }
        if r == 1 || sr == 1 {
            let ld = if c == 1 { r } else { sc };
            if ld >= r {
                return Some((true, ld));
            }
        }
        None
    }

    /// The storage offset of each batch element (the dims before the last two).
    fn batch_offsets(l: &Layout) -> Vec<usize> {
        let n = l.dims().len();
        let (dims, stride) = (&l.dims()[..n - 2], &l.stride()[..n - 2]);
        let count: usize = dims.iter().product();
        (0..count)
            .map(|mut i| {
                let mut off = l.start_offset();
                for (&d, &s) in dims.iter().zip(stride).rev() {
                    off += (i % d) * s;
                    i /= d;
                }
                off
            })
            .collect()
    }

    /// OpenBLAS single-threaded: the parallelism is rayon's (see `cpu_fwd`).
    fn init_threads() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: a plain setter of OpenBLAS's global thread count.
        ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
    }

    /// Whether BLAS can multiply `a · b` as they lie: f32 CPU tensors of one
    /// rank ≥ 2 with equal batch dims, each matrix with a unit stride, every
    /// size within BLAS's `i32`.
    fn blas_reads(a: &Tensor, b: &Tensor) -> bool {
        let (ad, bd) = (a.dims(), b.dims());
        let rank = ad.len();
        // `fused`: f32 tensors on the CPU.
        fused(&[a, b])
            && rank >= 2
            && bd.len() == rank
            && ad[..rank - 2] == bd[..rank - 2]
            && ad[rank - 1] == bd[rank - 2]
            && ad
                .iter()
                .chain(bd)
                .all(|&d| d > 0 && d <= i32::MAX as usize)
            && [operand(ad, a.stride()), operand(bd, b.stride())]
                .iter()
                .all(|o| o.is_some_and(|(_, ld)| ld <= i32::MAX as usize))
    }

    pub(super) fn try_matmul(a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
        if !blas_reads(a, b) {
            return Ok(None);
        }
        init_threads();
        a.apply_op2_no_bwd(b, &Sgemm).map(Some)
    }

    /// `c += a · b` in place when all three are 2-d f32 CPU tensors BLAS can
    /// read and `c` is a whole contiguous storage; `false` (nothing done) otherwise.
    pub(super) fn try_matmul_add(c: &Tensor, a: &Tensor, b: &Tensor) -> Result<bool> {
        let (ad, bd) = (a.dims(), b.dims());
        let storage = |t: &Tensor| &*t.storage_and_layout().0 as *const candle_core::Storage;
        // In place needs a write lock on `c` beside read locks on `a` and `b`.
        let fits = blas_reads(a, b)
            && ad.len() == 2
            && fused(&[c])
            && c.is_contiguous()
            && c.layout().start_offset() == 0
            && storage(c) != storage(a)
            && storage(c) != storage(b)
            && c.dims() == [ad[0], bd[1]];
        if !fits {
            return Ok(false);
        }
        init_threads();
        c.inplace_op3(a, b, &SgemmAdd)?;
        Ok(true)
    }

    /// Runs `m × n` of `C ← op(A)·op(B) + β·C` as row blocks on rayon's pool.
    /// `c` is the output's first element; every row block is written by one task.
    #[allow(clippy::too_many_arguments)]
    fn sgemm_rows(
        (ta, lda, av, oa): (bool, usize, &[f32], usize),
        (tb, ldb, bv, ob): (bool, usize, &[f32], usize),
        (m, n, k): (usize, usize, usize),
        beta: f32,
        c: SendPtr,
        blocks: usize,
    ) {
        let flag = |t: bool| if t { TRANS } else { NO_TRANS };
        let rows = m.div_ceil(blocks);
        (0..m.div_ceil(rows)).into_par_iter().for_each(|i| {
            let (r0, mr) = (i * rows, rows.min(m - i * rows));
            // Row r0 of op(A): its offset in A's storage.
            let a0 = oa + r0 * if ta { 1 } else { lda };
            // SAFETY: `operand` checked each leading dimension against the
            // matrix it describes, the layouts place every element of each
            // batch's matrix inside its storage, and the tasks' row blocks of
            // C (`c` holds `m·n` floats) do not overlap.
            unsafe {
                cblas_sgemm(
                    ROW_MAJOR,
                    flag(ta),
                    flag(tb),
                    mr as i32,
                    n as i32,
                    k as i32,
                    1.0,
                    av[a0..].as_ptr(),
                    lda as i32,
                    bv[ob..].as_ptr(),
                    ldb as i32,
                    beta,
                    c.at(r0 * n),
                    n as i32,
                )
            }
        });
    }

    /// A raw output pointer handed to rayon's tasks, each of which writes
    /// its own rows.
    #[derive(Clone, Copy)]
    struct SendPtr(*mut f32);
    // SAFETY: the tasks given one `SendPtr` write disjoint rows (`sgemm_rows`).
    unsafe impl Send for SendPtr {}
    unsafe impl Sync for SendPtr {}

    impl SendPtr {
        /// Through a method, so a closure captures the `SendPtr`, not its
        /// raw field.
        fn at(self, offset: usize) -> *mut f32 {
            self.0.wrapping_add(offset)
        }
    }

    /// Rayon tasks per product: one per thread for a single matrix (each at
    /// least 32 rows), none within a batch that already has a task per thread.
    fn row_blocks(batch: usize, m: usize) -> usize {
        let threads = candle_core::utils::get_num_threads().max(1);
        if batch >= threads {
            1
        } else {
            threads.min(m.div_ceil(32)).max(1)
        }
    }

    struct SgemmAdd;

    impl candle_core::InplaceOp3 for SgemmAdd {
        fn name(&self) -> &'static str {
            "openblas-sgemm-add"
        }

        fn cpu_fwd(
            &self,
            sc: &mut CpuStorage,
            lc: &Layout,
            sa: &CpuStorage,
            la: &Layout,
            sb: &CpuStorage,
            lb: &Layout,
        ) -> Result<()> {
            let (CpuStorage::F32(cv), CpuStorage::F32(av), CpuStorage::F32(bv)) = (sc, sa, sb)
            else {
                candle_core::bail!("openblas-sgemm-add: f32 operands only")
            };
            let (m, k, n) = (la.dims()[0], la.dims()[1], lb.dims()[1]);
            let ((ta, lda), (tb, ldb)) = match (
                operand(la.dims(), la.stride()),
                operand(lb.dims(), lb.stride()),
            ) {
                (Some(a), Some(b)) => (a, b),
                _ => candle_core::bail!("openblas-sgemm-add: a layout BLAS cannot read"),
            };
            let c = &mut cv[lc.start_offset()..];
            if c.len() < m * n {
                candle_core::bail!("openblas-sgemm-add: output smaller than {m}×{n}");
            }
            let out = SendPtr(c.as_mut_ptr());
            sgemm_rows(
                (ta, lda, av, la.start_offset()),
                (tb, ldb, bv, lb.start_offset()),
                (m, n, k),
                1.0,
                out,
                row_blocks(1, m),
            );
            Ok(())
        }
    }

    struct Sgemm;

    impl CustomOp2 for Sgemm {
        fn name(&self) -> &'static str {
            "openblas-sgemm"
        }

        fn cpu_fwd(
            &self,
            sa: &CpuStorage,
            la: &Layout,
            sb: &CpuStorage,
            lb: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            let (CpuStorage::F32(av), CpuStorage::F32(bv)) = (sa, sb) else {
                candle_core::bail!("openblas-sgemm: f32 operands only")
            };
            let rank = la.dims().len();
            let (m, k, n) = (
                la.dims()[rank - 2],
                la.dims()[rank - 1],
                lb.dims()[rank - 1],
            );
            let ((ta, lda), (tb, ldb)) = match (
                operand(la.dims(), la.stride()),
                operand(lb.dims(), lb.stride()),
            ) {
                (Some(a), Some(b)) => (a, b),
                _ => candle_core::bail!("openblas-sgemm: a layout BLAS cannot read"),
            };
            let (oa, ob) = (batch_offsets(la), batch_offsets(lb));
            // Each task is a block of rows of one batch element's output,
            // computed by a single-threaded sgemm on rayon's pool: the one
            // pool the other kernels use, so no OpenBLAS thread spins beside
            // them (it did, and cost more than its sgemm gained).
            let blocks = row_blocks(oa.len(), m);
            let len = oa.len() * m * n;
            // Not zeroed first: `β = 0` makes sgemm write every element of C
            // without reading it (a memset here cost 2–3 % of a step).
            let mut out: Vec<f32> = Vec::with_capacity(len);
            let base = SendPtr(out.as_mut_ptr());
            (0..oa.len()).into_par_iter().for_each(|e| {
                // Batch element `e` owns floats `e·m·n ..` of `out`.
                let c = SendPtr(base.at(e * m * n));
                sgemm_rows(
                    (ta, lda, av, oa[e]),
                    (tb, ldb, bv, ob[e]),
                    (m, n, k),
                    0.0,
                    c,
                    blocks,
                );
            });
            // SAFETY: every batch element's every row block was written by
            // sgemm with β = 0, so all `len` floats are initialised.
            unsafe { out.set_len(len) };
            let mut shape = la.dims()[..rank - 2].to_vec();
            shape.extend([m, n]);
            Ok((CpuStorage::F32(out), Shape::from(shape)))
        }
    }
}

/// `matmul_add` on any backend equals the product added after.
#[cfg(test)]
mod add_tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn matmul_add_equals_the_sum() {
        let dev = Device::Cpu;
        let (a, b) = (
            Tensor::randn(0f32, 1.0, (9, 5), &dev).unwrap(),
            Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap(),
        );
        let c = Tensor::randn(0f32, 1.0, (9, 4), &dev).unwrap();
        let expected = (&c + a.matmul(&b).unwrap()).unwrap();
        let sum = super::matmul_add(c.copy().unwrap(), &a, &b).unwrap();
        assert!(crate::engine::view::max_abs_diff(&sum, &expected) <= 1e-5);
    }
}

/// OpenBLAS against candle's matmul on every layout the engine hands it.
#[cfg(all(test, feature = "openblas"))]
mod tests {
    use candle_core::{Device, IndexOp, Tensor};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn rand(shape: &[usize], rng: &mut StdRng) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Checks BLAS took the pair and agrees with candle to f32 rounding.
    fn check(a: &Tensor, b: &Tensor, what: &str) {
        let ours = super::blas::try_matmul(a, b).unwrap();
        let ours = ours.unwrap_or_else(|| panic!("{what}: BLAS refused the layout"));
        // The reference: candle on copies (it refuses some of these views).
        let theirs = a
            .contiguous()
            .unwrap()
            .matmul(&b.contiguous().unwrap())
            .unwrap();
        assert_eq!(ours.dims(), theirs.dims(), "{what}");
        let diff = crate::engine::view::max_abs_diff(&ours, &theirs);
        let zero = theirs.zeros_like().unwrap();
        let scale = crate::engine::view::max_abs_diff(&theirs, &zero).max(1.0);
        assert!(
            diff <= 1e-5 * scale,
            "{what}: max |diff| {diff} (scale {scale})"
        );
    }

    #[test]
    fn every_engine_layout_agrees_with_candle() {
        let mut rng = StdRng::seed_from_u64(7);
        let (x, w) = (rand(&[37, 24], &mut rng), rand(&[19, 24], &mut rng));
        check(&x, &w.t().unwrap(), "x Wᵀ");
        let dy = rand(&[37, 19], &mut rng);
        check(&dy, &w, "dY W");
        check(&dy.t().unwrap(), &x, "dYᵀ x (weight gradient)");
        let both = rand(&[24, 37], &mut rng);
        check(&w, &both, "plain (19, 24)·(24, 37)");
        check(&both.t().unwrap(), &w.t().unwrap(), "both transposed");
        // A vocabulary chunk: rows 5..16 of the head, transposed (an offset view).
        check(&x, &w.narrow(0, 5, 11).unwrap().t().unwrap(), "head chunk");
        check(
            &dy.narrow(1, 5, 11).unwrap(),
            &w.narrow(0, 5, 11).unwrap(),
            "offset lhs",
        );
        // One row / one column.
        check(&x.i(3..4).unwrap(), &w.t().unwrap(), "m = 1");
        check(&x, &w.i(2..3).unwrap().t().unwrap(), "n = 1");
        // Attention: (b, kv heads, rows, d) against keys transposed, and a
        // batch made by a transpose (strided batch dims).
        let q = rand(&[2, 3, 10, 8], &mut rng);
        let k = rand(&[2, 3, 7, 8], &mut rng);
        check(&q, &k.t().unwrap(), "Q Kᵀ");
        let p = rand(&[2, 3, 10, 7], &mut rng);
        check(&p.t().unwrap(), &q, "Pᵀ dO");
        let v = rand(&[2, 7, 3, 8], &mut rng).transpose(1, 2).unwrap();
        check(&p, &v, "P V with V a transposed view");
    }

    /// `c + a·b` in place, on the layouts the backward accumulates with, equals
    /// the product added after; a `c` sharing storage with an operand, or a
    /// view, is left to the out-of-place path (and gives the same sum).
    #[test]
    fn accumulating_products_equal_adding_them() {
        let mut rng = StdRng::seed_from_u64(10);
        let (dy, w) = (rand(&[37, 19], &mut rng), rand(&[19, 24], &mut rng));
        let c = rand(&[37, 24], &mut rng);
        let expected = (&c + dy.matmul(&w).unwrap()).unwrap();
        let fresh = c.copy().unwrap();
        assert!(super::blas::try_matmul_add(&fresh, &dy, &w).unwrap());
        let diff = crate::engine::view::max_abs_diff(&fresh, &expected);
        assert!(diff <= 1e-5, "in place: max |diff| {diff}");
        // Transposed operands (a weight-gradient layout).
        let (a, b) = (rand(&[19, 37], &mut rng), rand(&[24, 19], &mut rng));
        let expected = (&c + a.t().unwrap().matmul(&b.t().unwrap()).unwrap()).unwrap();
        let sum = super::matmul_add(c.copy().unwrap(), &a.t().unwrap(), &b.t().unwrap()).unwrap();
        assert!(crate::engine::view::max_abs_diff(&sum, &expected) <= 1e-5);
        // `c` is `a` itself: refused in place, still summed.
        let sq = rand(&[6, 6], &mut rng);
        let expected = (&sq + sq.matmul(&sq).unwrap()).unwrap();
        assert!(!super::blas::try_matmul_add(&sq, &sq, &sq).unwrap());
        let sum = super::matmul_add(sq.clone(), &sq, &sq).unwrap();
        assert!(crate::engine::view::max_abs_diff(&sum, &expected) <= 1e-5);
        // A view into a larger storage (offset): refused in place.
        let big = rand(&[40, 24], &mut rng);
        let view = big.narrow(0, 3, 37).unwrap();
        assert!(!super::blas::try_matmul_add(&view, &dy, &w).unwrap());
    }

    #[test]
    fn a_broadcast_batch_is_read_in_place() {
        let mut rng = StdRng::seed_from_u64(8);
        let a = rand(&[2, 5, 4], &mut rng);
        let b = rand(&[4, 3], &mut rng).unsqueeze(0).unwrap();
        check(&a, &b.broadcast_as((2, 4, 3)).unwrap(), "batch stride 0");
    }

    #[test]
    fn layouts_blas_cannot_take_go_to_candle() {
        let mut rng = StdRng::seed_from_u64(9);
        // Neither of the last two dims unit-strided: (4, 5) with strides (15, 3).
        let a = rand(&[4, 5, 3], &mut rng)
            .narrow(2, 0, 1)
            .unwrap()
            .squeeze(2)
            .unwrap();
        assert_eq!(a.stride(), &[15, 3]);
        let b = rand(&[5, 2], &mut rng);
        assert!(super::blas::try_matmul(&a, &b).unwrap().is_none());
        // Ranks that differ, and bf16, too.
        assert!(super::blas::try_matmul(&rand(&[2, 4, 5], &mut rng), &b)
            .unwrap()
            .is_none());
        let (h, g) = (b.t().unwrap(), rand(&[5, 3], &mut rng));
        let (h, g) = (
            h.to_dtype(candle_core::DType::BF16).unwrap(),
            g.to_dtype(candle_core::DType::BF16).unwrap(),
        );
        assert!(super::blas::try_matmul(&h, &g).unwrap().is_none());
        // The public entry still multiplies what candle can.
        assert_eq!(super::matmul(&h, &g).unwrap().dims(), &[2, 3]);
    }
}
