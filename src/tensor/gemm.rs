//! The one call into the GEMM dependency, and the thread count it uses.
//!
//! The kernel takes raw pointers and strides, so every call first checks that each strided matrix
//! lies inside its slice. The output may be uninitialised memory: the kernel only writes it.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 means "not set": use every core.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Products smaller than this many multiply-adds run on one thread: below it, waking a second
/// thread costs more than it saves.
const PARALLEL_THRESHOLD: usize = 64 * 64 * 64;

/// Products with fewer rows than this are split between threads by rows (see `on_threads`).
const ROW_SPLIT_BELOW: usize = 256;

/// Sets how many threads matrix products, large elementwise kernels and optimizer updates may
/// use (`0` restores the default: every core).
///
/// Matrix products of at least 64³ multiply-adds, optimizer updates of parameters with at least
/// 32,768 elements, transcendental elementwise functions (exp, tanh, ...) on at least 32,768
/// elements, and arithmetic, relu, fills and full sums on at least 262,144 elements run on these
/// threads; smaller work stays on the calling thread. Elementwise results and sums are the same
/// bit for bit whatever the setting.
///
/// ```
/// tapegrad::set_num_threads(1); // deterministic single-core timing
/// assert_eq!(tapegrad::num_threads(), 1);
/// tapegrad::set_num_threads(0);
/// ```
pub fn set_num_threads(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// The number of threads matrix products, large elementwise kernels and optimizer updates use.
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
    ($name:ident, $on_threads:ident, $t:ty) => {
        /// `C ← A·B` for strided `m×k` A and `k×n` B (see [`crate::Float::gemm`]): every element
        /// of the strided `m×n` C is written, none is read.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: &[$t],
            a_strides: (isize, isize),
            b: &[$t],
            b_strides: (isize, isize),
            c: &mut [MaybeUninit<$t>],
            c_strides: (isize, isize),
        ) {
            $on_threads(
                m,
                k,
                n,
                a,
                a_strides,
                b,
                b_strides,
                c,
                c_strides,
                num_threads(),
            )
        }

        /// [`$name`] on at most `threads` threads.
        #[allow(clippy::too_many_arguments)]
        fn $on_threads(
            m: usize,
            k: usize,
            n: usize,
            a: &[$t],
            a_strides: (isize, isize),
            b: &[$t],
            b_strides: (isize, isize),
            c: &mut [MaybeUninit<$t>],
            c_strides: (isize, isize),
            threads: usize,
        ) {
            assert!(extent(m, k, a_strides) <= a.len(), "gemm: A out of bounds");
            assert!(extent(k, n, b_strides) <= b.len(), "gemm: B out of bounds");
            assert!(extent(m, n, c_strides) <= c.len(), "gemm: C out of bounds");
            let big = m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD;
            // Split C's rows between threads ourselves when C is a plain row-major matrix with
            // few rows: the kernel's own threading splits poorly when m is small (a batch of 64
            // rows), where it was slower on two threads than on one (benches/nn.rs, W2). With
            // many rows the kernel's split is the faster one (it packs B once for all threads):
            // W4 on two threads 61–63 against 45–57 GFLOP/s with ours, in one A/B sitting.
            if big && threads > 1 && c_strides == (n as isize, 1) && m >= 2 * threads && m < ROW_SPLIT_BELOW {
                let rows_per = m.div_ceil(threads);
                let a_row = a_strides.0 as usize;
                rayon::scope(|scope| {
                    for (i, c_part) in c[..m * n].chunks_mut(rows_per * n).enumerate() {
                        let rows = c_part.len() / n;
                        let a_part = &a[i * rows_per * a_row..];
                        scope.spawn(move |_| {
                            $on_threads(
                                rows, k, n, a_part, a_strides, b, b_strides, c_part, c_strides, 1,
                            )
                        });
                    }
                });
                return;
            }
            let parallelism = match big {
                true if threads > 1 => gemm::Parallelism::Rayon(threads),
                _ => gemm::Parallelism::None,
            };
            // SAFETY: the asserts above keep every strided access of A, B and C inside its slice,
            // and C is borrowed mutably, so it cannot alias A or B. With `read_dst` false the
            // kernel sets its `alpha` to zero and never reads C (so C may be uninitialised, and
            // stale values, even NaN, do not leak into the result); it writes every element of
            // C, also when k is 0 (zeros). `MaybeUninit<T>` has `T`'s layout. gemm computes
            // dst = alpha·dst + beta·lhs·rhs and takes column stride before row stride.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr().cast::<$t>(),
                    c_strides.1,
                    c_strides.0,
                    false,
                    a.as_ptr(),
                    a_strides.1,
                    a_strides.0,
                    b.as_ptr(),
                    b_strides.1,
                    b_strides.0,
                    0.0,
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

gemm_fn!(sgemm, sgemm_on_threads, f32);
gemm_fn!(dgemm, dgemm_on_threads, f64);

#[cfg(test)]
mod tests {
    use super::*;

    /// `op(A)·B` by three loops, with `A` stored `[m, k]` or (transposed) `[k, m]`.
    fn naive(m: usize, k: usize, n: usize, a: &[f64], a_transposed: bool, b: &[f64]) -> Vec<f64> {
        let at = |i: usize, p: usize| if a_transposed { a[p * m + i] } else { a[i * k + p] };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn rows_split_between_threads_give_the_one_thread_result() {
        // Above the parallel threshold, with a row count that does not divide evenly: split
        // by rows, and (300 rows) by the kernel.
        for (m, k, n) in [(67, 61, 70), (300, 40, 50)] {
            overwrite_case(m, k, n);
        }
    }

    #[test]
    fn every_output_element_is_written_for_degenerate_shapes() {
        // The kernel's row-vector, column-vector and empty-sum paths must overwrite C as well.
        for (m, k, n) in [(1, 5, 7), (6, 5, 1), (1, 1, 1), (4, 0, 3), (1, 0, 1), (3, 2, 0)] {
            overwrite_case(m, k, n);
        }
    }

    /// C starts as NaN (standing in for uninitialised memory): every element must come out as
    /// the naive product, on 1, 2 and 3 threads, with A read plainly and transposed.
    fn overwrite_case(m: usize, k: usize, n: usize) {
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
        for a_transposed in [false, true] {
            let strides = if a_transposed {
                (1, m as isize)
            } else {
                (k as isize, 1)
            };
            let want = naive(m, k, n, &a, a_transposed, &b);
            for threads in [1, 2, 3] {
                let mut c = vec![MaybeUninit::new(f64::NAN); m * n];
                dgemm_on_threads(
                    m,
                    k,
                    n,
                    &a,
                    strides,
                    &b,
                    (n as isize, 1),
                    &mut c,
                    (n as isize, 1),
                    threads,
                );
                for (x, y) in c.iter().zip(&want) {
                    // SAFETY: initialised above (NaN), and NaN fails the comparison.
                    let x = unsafe { x.assume_init() };
                    assert!(
                        (x - y).abs() < 1e-12,
                        "{m}x{k}x{n}, {threads} threads, transposed {a_transposed}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
