//! Elementwise loops compiled for the widest vector instructions this CPU has, chosen at run
//! time.
//!
//! The crate is built for the baseline of its target (SSE2 on x86-64), so a loop that the
//! compiler vectorises runs 4 f32 lanes at a time. [`run`] calls a kernel through a copy of
//! itself compiled with AVX2 or AVX-512 enabled when the CPU has them (`is_x86_feature_detected`
//! caches its answer), and the kernel's loop, inlined there, is vectorised 8 or 16 lanes wide:
//! on the Xeon of BENCHMARKS.md that took exact f32 `gelu` from 2.55 to 1.01 ms per 2²⁰ elements.
//! Fused multiply-add stays off, so every level rounds exactly as the portable code does and
//! results do not depend on the machine (the tests compare the levels bit for bit; only a NaN's
//! sign bit may differ, as vector and scalar instructions make NaNs differently).
//!
//! Kernels passed to [`run`] should be closures marked `#[inline(always)]` around a plain loop
//! over slices (no calls that would not be inlined), or they keep running at the baseline width.

/// An instruction-set level that [`run_at`] can compile a kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// The target's baseline (SSE2 on x86-64); every CPU.
    Portable,
    /// AVX2: 256-bit vectors.
    Avx2,
    /// AVX-512 (foundation): 512-bit vectors.
    Avx512,
}

/// The widest level this CPU supports.
pub(crate) fn best() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Portable
}

/// Runs `kernel` compiled for the widest level this CPU supports.
#[inline(always)]
pub(crate) fn run<R>(kernel: impl FnOnce() -> R) -> R {
    run_at(best(), kernel)
}

/// Runs `kernel` compiled for `level`, or for the widest level below it that this CPU
/// supports (so asking for AVX-512 on a CPU without it is safe).
#[inline(always)]
pub(crate) fn run_at<R>(level: Level, kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if level == Level::Avx512 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, the only feature the function enables.
            return unsafe { avx512(kernel) };
        }
        if level != Level::Portable && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only feature the function enables.
            return unsafe { avx2(kernel) };
        }
    }
    let _ = level;
    kernel()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<R>(kernel: impl FnOnce() -> R) -> R {
    kernel()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(kernel: impl FnOnce() -> R) -> R {
    kernel()
}
