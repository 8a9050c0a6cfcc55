//! The element type: [`Float`] is implemented by `f32` (the default) and `f64`.

use std::fmt::{Debug, Display, LowerExp};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use rand::{Rng, RngExt};

/// A floating-point element type for tensors: `f32` (the default everywhere) or `f64`.
///
/// Training runs in `f32`; gradient checking runs in `f64`. The trait is sealed in spirit: the
/// crate's kernels (GEMM in particular) are only provided for these two types.
///
/// ```
/// use tapegrad::Float;
/// fn half<T: Float>(x: T) -> T { x * T::from_f64(0.5) }
/// assert_eq!(half(3.0f32), 1.5);
/// assert_eq!(half(3.0f64).to_f64(), 1.5);
/// ```
pub trait Float:
    Copy
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
    /// General matrix multiply `C ← A·B + beta·C` on strided `m×k` and `k×n` matrices
    /// (strides in elements; `beta` is 0 or 1, and with 0 the old content of C is ignored).
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
        beta: Self,
        c: &mut [Self],
        c_strides: (isize, isize),
    );
}

macro_rules! impl_float {
    ($t:ident, $gemm:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
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
                $t::exp(self)
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
                $t::tanh(self)
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
                beta: Self,
                c: &mut [Self],
                c_strides: (isize, isize),
            ) {
                crate::tensor::gemm::$gemm(m, k, n, a, a_strides, b, b_strides, beta, c, c_strides)
            }
        }
    };
}

impl_float!(f32, sgemm);
impl_float!(f64, dgemm);
