//! The element types a [`Tensor`](crate::Tensor) can hold: the floats `f32` and `f64`
//! ([`Float`](crate::Float), the only differentiable ones), `bool` (masks) and `usize` (indices).

use std::fmt::Debug;

/// A type a tensor can hold: `f32`, `f64`, `bool` or `usize`.
///
/// Layout ops (reshape, transpose, narrow, permute, cat, ...), comparisons and display work for
/// every element type; arithmetic and differentiation need [`Float`](crate::Float). The trait is
/// sealed: the crate's kernels exist for these four types only.
///
/// ```
/// use tapegrad::{Element, Tensor};
/// fn describe<T: Element>(t: &Tensor<T>) -> String {
///     format!("{} tensor of shape {:?}", T::DTYPE, t.shape())
/// }
/// let mask = Tensor::<bool>::from_vec(vec![true, false], &[2]);
/// assert_eq!(describe(&mask), "bool tensor of shape [2]");
/// ```
pub trait Element:
    sealed::Sealed + crate::tensor::ElementDisplay + Copy + Send + Sync + 'static + Debug + PartialEq + Default
{
    /// The type's name as messages and `Debug` print it: `"f32"`, `"f64"`, `"bool"`, `"usize"`.
    const DTYPE: &'static str;
}

pub(crate) mod sealed {
    /// Seals [`Element`](super::Element), and holds what kernels need per element type.
    pub trait Sealed: Sized {
        /// `a` where `take_a`, else `b`, with bit masks instead of a branch: a mask read from
        /// memory is unpredictable, and a branch per element made `masked_fill` 10× slower.
        fn select(take_a: bool, a: Self, b: Self) -> Self;
    }
    macro_rules! select_by_bits {
        ($($t:ty => $bits:ty),*) => {$(
            impl Sealed for $t {
                #[inline(always)]
                fn select(take_a: bool, a: Self, b: Self) -> Self {
                    let mask = <$bits>::from(take_a).wrapping_neg();
                    <$t>::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
                }
            }
        )*};
    }
    select_by_bits!(f32 => u32, f64 => u64);
    impl Sealed for bool {
        #[inline(always)]
        fn select(take_a: bool, a: Self, b: Self) -> Self {
            (take_a & a) | (!take_a & b)
        }
    }
    impl Sealed for usize {
        #[inline(always)]
        fn select(take_a: bool, a: Self, b: Self) -> Self {
            let mask = usize::from(take_a).wrapping_neg();
            (a & mask) | (b & !mask)
        }
    }
}

impl Element for f32 {
    const DTYPE: &'static str = "f32";
}
impl Element for f64 {
    const DTYPE: &'static str = "f64";
}
macro_rules! float_display {
    ($($t:ty),*) => {$(
        impl crate::tensor::ElementDisplay for $t {
            fn writer(values: &[$t]) -> crate::tensor::ElementWriter<'_, $t> {
                crate::tensor::float_writer(values)
            }
            fn scalar_text(self) -> String {
                crate::tensor::float_scalar_text(self)
            }
        }
    )*};
}
float_display!(f32, f64);
impl Element for bool {
    const DTYPE: &'static str = "bool";
}
impl Element for usize {
    const DTYPE: &'static str = "usize";
}
