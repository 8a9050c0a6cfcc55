//! The one call into the GEMM dependency, and the thread count it uses.
//!
//! `unsafe` lives here only: the kernel takes raw pointers and strides, so every call first
//! checks that each strided matrix lies inside its slice.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use every core.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Products smaller than this many multiply-adds run on one thread: below it, waking a second
/// thread costs more than it saves.
const PARALLEL_THRESHOLD: usize = 64 * 64 * 64;

/// Sets how many threads matrix products may use (`0` restores the default: every core).
///
/// Elementwise kernels are single-threaded; only GEMM (matmul and its backward) is parallel.
///
/// ```
/// tapegrad::set_num_threads(1); // deterministic single-core timing
/// assert_eq!(tapegrad::num_threads(), 1);
/// tapegrad::set_num_threads(0);
/// ```
pub fn set_num_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// The number of threads matrix products use.
pub fn num_threads() -> usize {
    // Asking the OS costs tens of microseconds (several syscalls): do it once.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match THREADS.load(Ordering::Relaxed) {
        0 => *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        n => n,
    }
}

/// Index of the last element of a `rows x cols` matrix read with `strides`, plus one.
fn extent(rows: usize, cols: usize, (rs, cs): (isize, isize)) -> usize {
    assert!(
        rs >= 0 && cs >= 0,
        "gemm: negative strides are not used by tapegrad"
    );
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1) * rs as usize + (cols - 1) * cs as usize + 1
}

macro_rules! gemm_fn {
    ($name:ident, $t:ty) => {
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
            let parallelism = match m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
                true if num_threads() > 1 => gemm::Parallelism::Rayon(num_threads()),
                _ => gemm::Parallelism::None,
            };
            // SAFETY: the asserts above keep every strided access of A, B and C inside its slice,
            // and C is borrowed mutably, so it cannot alias A or B. With `read_dst` false the
            // kernel never reads C, so its old contents (even NaN) do not leak into the result.
            // gemm computes dst = alpha·dst + beta·lhs·rhs and takes column stride before row stride.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    c_strides.1,
                    c_strides.0,
                    beta != 0.0,
                    a.as_ptr(),
                    a_strides.1,
                    a_strides.0,
                    b.as_ptr(),
                    b_strides.1,
                    b_strides.0,
                    beta,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        }
    };
}

gemm_fn!(sgemm, f32);
gemm_fn!(dgemm, f64);
