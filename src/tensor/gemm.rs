//! The one call into the GEMM dependency. `unsafe` lives here only: the kernel takes raw pointers
//! and strides, so every call first checks that each strided matrix lies inside its slice.

/// Index of the last element of a `rows x cols` matrix read with `strides`, plus one.
fn extent(rows: usize, cols: usize, (rs, cs): (isize, isize)) -> usize {
    debug_assert!(rs >= 0 && cs >= 0);
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
}

macro_rules! gemm_fn {
    ($name:ident, $t:ty, $kernel:path) => {
        /// `C ← A·B + beta·C` for strided `m×k` A and `k×n` B (see [`crate::Float::gemm`]).
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: &[$t],
            a_strides: (isize, isize),
            b: &[$t],
            b_strides: (isize, isize),
            beta: $t,
            c: &mut [$t],
            c_strides: (isize, isize),
        ) {
            assert!(extent(m, k, a_strides) <= a.len(), "gemm: A out of bounds");
            assert!(extent(k, n, b_strides) <= b.len(), "gemm: B out of bounds");
            assert!(extent(m, n, c_strides) <= c.len(), "gemm: C out of bounds");
            // SAFETY: the asserts above keep every strided access of A, B and C inside its slice;
            // C is borrowed mutably, so it cannot alias A or B.
            unsafe {
                $kernel(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    a_strides.0,
                    a_strides.1,
                    b.as_ptr(),
                    b_strides.0,
                    b_strides.1,
                    beta,
                    c.as_mut_ptr(),
                    c_strides.0,
                    c_strides.1,
                )
            }
        }
    };
}

gemm_fn!(sgemm, f32, matrixmultiply::sgemm);
gemm_fn!(dgemm, f64, matrixmultiply::dgemm);
