//! The element type: [`Float`] is implemented by `f32` (the default) and `f64`.

use std::fmt::{Debug, Display, LowerExp};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use rand::{Rng, RngExt};

/// A floating-point element type for tensors: `f32` (the default everywhere) or `f64`.
///
/// Training runs in `f32`; gradient checking runs in `f64`. The trait is sealed: the crate's
/// kernels (GEMM in particular) exist for these two types only, and its unsafe code relies on
/// their implementations.
///
/// ```
/// use tapegrad::Float;
/// fn half<T: Float>(x: T) -> T { x * T::from_f64(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64).to_f64(), 1.5);
/// ```
pub trait Float:
    sealed::Sealed
    + crate::Element
    + Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + LowerExp
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// `+∞`: as a bound of [`Var::clamp`](crate::Var::clamp), it leaves that side open.
    const INFINITY: Self;
    /// `-∞`: as a bound of [`Var::clamp`](crate::Var::clamp), it leaves that side open; as the fill of
    /// [`Var::masked_fill`](crate::Var::masked_fill) before a softmax, it removes a position.
    const NEG_INFINITY: Self;
    /// The type's name, `"f32"` or `"f64"`, used in messages.
    const NAME: &'static str;
    /// Converts from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exactly).
    fn to_f64(self) -> f64;
    /// Converts a count to this type.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// `self^p` for a real exponent.
    fn powf(self, p: Self) -> Self;
    /// `self^n` for an integer exponent.
    fn powi(self, n: i32) -> Self;
    /// The larger of two values (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values (NaN-ignoring, as `f64::min`).
    fn min(self, other: Self) -> Self;
    /// `true` unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// `true` for NaN.
    fn is_nan(self) -> bool;
    /// A sample from the standard normal distribution N(0, 1).
    fn sample_standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self;
    /// A sample from the uniform distribution on `[lo, hi)`.
    fn sample_uniform<R: Rng + ?Sized>(rng: &mut R, lo: Self, hi: Self) -> Self;
    /// Matrix multiply `C ← A·B` on strided `m×k` and `k×n` matrices (strides in elements).
    /// Every element of C is written and none is read, so C may be uninitialised.
    ///
    /// This is the one place the crate calls its GEMM dependency.
    #[allow(clippy::too_many_arguments)]
    #[doc(hidden)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        a_strides: (isize, isize),
        b: &[Self],
        b_strides: (isize, isize),
        c: &mut [std::mem::MaybeUninit<Self>],
        c_strides: (isize, isize),
    );
}

/// Keeps [`Float`] implemented by `f32` and `f64` only: `Tensor`'s GEMM output is never zeroed,
/// which is sound because these two implementations of `Float::gemm` write every element.
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! impl_float {
    ($t:ident, $gemm:ident, $exp:path, $tanh:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = $t::INFINITY;
            const NEG_INFINITY: Self = $t::NEG_INFINITY;
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn sin(self) -> Self {
                $t::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                $t::cos(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                $t::powf(self, p)
            }
            #[inline]
            fn powi(self, n: i32) -> Self {
                $t::powi(self, n)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                $t::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                $t::is_nan(self)
            }
            fn sample_standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
                rng.sample(rand_distr::StandardNormal)
            }
            fn sample_uniform<R: Rng + ?Sized>(rng: &mut R, lo: Self, hi: Self) -> Self {
                rng.random_range(lo..hi)
            }
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                a_strides: (isize, isize),
                b: &[Self],
                b_strides: (isize, isize),
                c: &mut [std::mem::MaybeUninit<Self>],
                c_strides: (isize, isize),
            ) {
                crate::tensor::gemm::$gemm(m, k, n, a, a_strides, b, b_strides, c, c_strides)
            }
        }
    };
}

impl_float!(f32, sgemm, exp_f32, tanh_f32);
impl_float!(f64, dgemm, f64::exp, f64::tanh);

/// `e^x` for `f32`, written without branches or library calls so that the compiler vectorises
/// it over a tensor (libm's `expf` is a call per element: 4.3 ns against 1.7 for PyTorch's
/// vectorised one on `[1048576]`, BENCHMARKS.md). Within 1.5 ulp of the exact value, also for
/// subnormal results (1.2 at worst over the tests' sweep of 2.7·10⁷ inputs against `f64::exp`);
/// overflows to `+inf` above ln(`f32::MAX`) ≈ 88.72 and underflows to 0 below about -103.97, as
/// `expf` does.
#[inline]
fn exp_f32(x: f32) -> f32 {
    // Beyond these bounds the result is `inf` or 0 anyway; inside them `n` below stays within
    // [-150, 129], which `exp_f32_reduced` scales without overflowing its powers of two.
    let e = exp_f32_reduced(x.clamp(-104.0, 89.0));
    if x.is_nan() { x } else { e }
}

/// `e^x` for finite `x` in [-104, 89]: Cody–Waite range reduction (`x = n ln2 + r`,
/// `|r| ≤ ln2 / 2`), a degree-7 Taylor polynomial for `e^r` (truncation error below 0.1 ulp),
/// and `2^n` built from exponent bits as `2^⌊n/2⌋ · 2^(n - ⌊n/2⌋)`: both factors are normal
/// numbers for every `n` here, the first product is exact, and only the second rounds, so
/// subnormal and overflowing results come out right.
#[inline]
fn exp_f32_reduced(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n · LN2_HI is exact for the n that occur (|n| ≤ 150).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer without a `round` call.
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // `shifted` holds n in its low mantissa bits, so n is read from those bits with integer
    // operations: `n as i32` would saturate and check for NaN lane by lane, which kept the loop
    // from vectorising fully.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let half = n_bits >> 1;
    let power = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * power(half) * power(n_bits - half)
}

/// `tanh` for `f32` within 1.5 ulp of the exact value (checked against `f64::tanh` over a sweep
/// of 10⁷ inputs: see the tests), written without branches or library calls so that the
/// compiler vectorises it over a tensor. libm's `tanhf` (a call per element, through `expm1f`)
/// was over a fifth of the time of a small-tensor network (W3 in BENCHMARKS.md); PyTorch uses
/// vectorised SLEEF routines of the same accuracy class.
///
/// Below |x| = 0.625: `x + x³·P(x²)`, `P` a degree-4 least-squares fit on Chebyshev nodes.
/// Above: `1 - 2 / (e^{2|x|} + 1)`, with `e^y` from [`exp_f32_reduced`]; `|x|` is clamped at
/// 10, beyond which `tanh` rounds to 1 in `f32`.
#[inline]
fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();

    let z = a * a;
    let p = -5.731_194_7e-3;
    let p = p * z + 2.066_472_4e-2;
    let p = p * z - 5.374_844_4e-2;
    let p = p * z + 1.333_156_1e-1;
    let p = p * z - 3.333_328_7e-1;
    let small = a + a * z * p;

    let large = 1.0 - 2.0 / (exp_f32_reduced(2.0 * a.min(10.0)) + 1.0);

    let t = if a < 0.625 { small } else { large };
    if x.is_nan() { x } else { t.copysign(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place of `f32` around the exact value.
    fn ulps(got: f32, exact: f64) -> f64 {
        let spacing = {
            let e = exact.abs() as f32;
            (f32::from_bits(e.to_bits() + 1) - e) as f64
        };
        (got as f64 - exact).abs() / spacing
    }

    /// The largest distance in ulps between `f` and `exact` over every `step`-th `f32` of
    /// magnitude 2^-40 to `limit` (both signs) and a grid of 2·10⁶ + 1 points on
    /// [-limit, limit], skipping inputs at or above `above`; with the input where it occurs.
    fn worst_ulps(
        f: fn(f32) -> f32,
        exact: fn(f64) -> f64,
        limit: f32,
        step: usize,
        above: f32,
    ) -> (f64, f32) {
        let from = (2.0f32).powi(-40).to_bits();
        let grid = (0..2_000_001).map(|i| -limit + limit * 1e-6 * i as f32);
        (from..limit.to_bits())
            .step_by(step)
            .map(f32::from_bits)
            .flat_map(|x| [x, -x])
            .chain(grid)
            .filter(|&x| x < above)
            .map(|x| (ulps(f(x), exact(x as f64)), x))
            .fold(
                (0.0, 0.0),
                |worst, next| if next.0 > worst.0 { next } else { worst },
            )
    }

    #[test]
    fn tanh_f32_is_within_one_and_a_half_ulp_everywhere() {
        // Up to 12, past the clamp at 10.
        let (ulp, x) = worst_ulps(tanh_f32, f64::tanh, 12.0, 97, f32::INFINITY);
        assert!(ulp <= 1.5, "{ulp} ulp at x = {x:e}");
    }

    #[test]
    fn exp_f32_is_within_one_and_a_half_ulp_everywhere() {
        // Results from the smallest subnormal up to near f32::MAX; inputs above ln(f32::MAX)
        // overflow and are checked below.
        let (ulp, x) = worst_ulps(exp_f32, f64::exp, 104.0, 31, 88.72);
        assert!(ulp <= 1.5, "{ulp} ulp at x = {x:e}");
    }

    #[test]
    fn exp_f32_special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(88.73), f32::INFINITY);
        assert_eq!(exp_f32(1e30), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY).to_bits(), 0.0f32.to_bits());
        assert_eq!(exp_f32(-104.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(exp_f32(-1e30).to_bits(), 0.0f32.to_bits());
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(88.72).is_finite() && exp_f32(88.72) > 3.0e38);
        // The smallest subnormal (e^-103.28 ≈ 2^-149), other subnormals, and f32::MIN_POSITIVE's
        // neighbourhood, each the correctly rounded value.
        assert_eq!(exp_f32(-103.27893), f32::from_bits(1));
        for x in [-100.0f32, -90.0, -87.33654, 1.0] {
            assert_eq!(exp_f32(x), (x as f64).exp() as f32, "e^{x}");
        }
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
    }

    #[test]
    fn tanh_f32_special_values() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e30), 1.0);
        assert_eq!(tanh_f32(-88.0), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(1e-30), 1e-30);
        assert_eq!(tanh_f32(f32::MIN_POSITIVE / 4.0), f32::MIN_POSITIVE / 4.0); // subnormal
    }
}
