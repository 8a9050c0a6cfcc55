//! Comparisons of vars (masks of their values) and the indices of extrema along an axis.
//!
//! Masks and indices are not differentiable, so nothing here records a node: each method reads
//! the var's value and returns a plain tensor, as PyTorch's comparisons return tensors without
//! `grad_fn`. Use the masks with [`Tensor::to_float`] and `mul`, or with masking ops.

use crate::{Float, Tensor, Var};

mod sealed {
    pub trait Sealed {}
}

/// The other side of a comparison of a [`Var`]: another var (`x.lt(y)`, `x.lt(&y)`), a tensor
/// (`x.lt(&t)`, `x.lt(t)`) or a scalar (`x.lt(0.0)`). Only its value is read.
///
/// The trait is sealed: it is implemented for exactly these types.
///
/// ```
/// use tapegrad::{Tape, Tensor};
/// let tape = Tape::<f32>::new();
/// let x = tape.var([1.0, 2.0, 3.0]);
/// let y = tape.var([3.0, 2.0, 1.0]);
/// let t = Tensor::from(vec![2.0, 2.0, 2.0]);
/// assert_eq!(x.lt(y).to_vec(), vec![true, false, false]);
/// assert_eq!(x.lt(&t).to_vec(), vec![true, false, false]);
/// assert_eq!(x.lt(2.5).to_vec(), vec![true, true, false]);
/// ```
pub trait CompareWith<T: Float>: sealed::Sealed {
    /// The value to compare with (a cheap copy-on-write clone for vars and tensors).
    fn compare_value(self) -> Tensor<T>;
}

impl<T: Float> sealed::Sealed for Var<'_, T> {}
impl<T: Float> CompareWith<T> for Var<'_, T> {
    fn compare_value(self) -> Tensor<T> {
        self.value()
    }
}

impl<T: Float> sealed::Sealed for &Var<'_, T> {}
impl<T: Float> CompareWith<T> for &Var<'_, T> {
    fn compare_value(self) -> Tensor<T> {
        self.value()
    }
}

impl<T: Float> sealed::Sealed for Tensor<T> {}
impl<T: Float> CompareWith<T> for Tensor<T> {
    fn compare_value(self) -> Tensor<T> {
        self
    }
}

impl<T: Float> sealed::Sealed for &Tensor<T> {}
impl<T: Float> CompareWith<T> for &Tensor<T> {
    fn compare_value(self) -> Tensor<T> {
        self.clone()
    }
}

macro_rules! scalar_compare_with {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl CompareWith<$t> for $t {
            fn compare_value(self) -> Tensor<$t> {
                Tensor::scalar(self)
            }
        }
    )*};
}

scalar_compare_with!(f32, f64);

macro_rules! var_comparisons {
    ($($name:ident, $doc:literal, $example:literal;)*) => {
        /// Comparisons, giving masks of the values (not recorded: masks are not differentiable).
        impl<'t, T: Float> Var<'t, T> {
            $(
                #[doc = $doc]
                ///
                /// Elementwise, with NumPy broadcasting, on the values; see [`Tensor::lt`] for the
                /// NaN rules. `other` is a var, a tensor or a scalar ([`CompareWith`]); a var may
                /// come from another tape, since only values are read. Nothing is recorded.
                ///
                /// # Panics
                /// If the shapes cannot be broadcast together.
                ///
                /// ```
                /// use tapegrad::{Tape, Tensor};
                /// let tape = Tape::<f64>::new();
                /// let x = tape.var(Tensor::from_vec(vec![-1.0, 0.0, 2.0, 3.0], &[2, 2]));
                #[doc = $example]
                #[doc = concat!("assert_eq!(x.", stringify!($name), "(tape.var([0.0, 3.0])).shape(), &[2, 2]);")]
                /// ```
                #[track_caller]
                pub fn $name(self, other: impl CompareWith<T>) -> Tensor<bool> {
                    let other = other.compare_value();
                    self.value_ref().$name(other)
                }
            )*
        }
    };
}

var_comparisons! {
    lt, "The mask of `self < other` (`torch.lt`).",
        "assert_eq!(x.lt(0.0).to_vec(), vec![true, false, false, false]);";
    le, "The mask of `self <= other` (`torch.le`).",
        "assert_eq!(x.le(0.0).to_vec(), vec![true, true, false, false]);";
    gt, "The mask of `self > other` (`torch.gt`).",
        "assert_eq!(x.gt(0.0).to_vec(), vec![false, false, true, true]);";
    ge, "The mask of `self >= other` (`torch.ge`).",
        "assert_eq!(x.ge(0.0).to_vec(), vec![false, true, true, true]);";
    equal, "The mask of `self == other` (`torch.eq`; named after NumPy's `np.equal`, since `eq` \
        would read as [`PartialEq`]'s).",
        "assert_eq!(x.equal(2.0).to_vec(), vec![false, false, true, false]);";
    not_equal, "The mask of `self != other` (`torch.ne`; named after NumPy's `np.not_equal`, \
        since `ne` would read as [`PartialEq`]'s).",
        "assert_eq!(x.not_equal(2.0).to_vec(), vec![true, true, false, true]);";
}

impl<'t, T: Float> Var<'t, T> {
    /// The mask of NaN elements of the value (`torch.isnan`). Nothing is recorded.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([0.0, 1.0]);
    /// assert_eq!((x.ln() * x).isnan().to_vec(), vec![true, false]); // 0 · -inf
    /// ```
    pub fn isnan(self) -> Tensor<bool> {
        self.value_ref().isnan()
    }

    /// The mask of finite elements of the value (`torch.isfinite`). Nothing is recorded.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([0.0, 1.0]);
    /// assert_eq!(x.ln().isfinite().to_vec(), vec![false, true]);
    /// ```
    pub fn isfinite(self) -> Tensor<bool> {
        self.value_ref().isfinite()
    }

    /// The index of the first maximum of the value along `axis` (`torch.argmax(x, dim,
    /// keepdim)`); a NaN counts as the maximum. Nothing is recorded. See
    /// [`Tensor::argmax_axis`].
    ///
    /// # Panics
    /// If `axis` is out of range or the axis is empty.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let logits = tape.var(Tensor::from_vec(vec![0.1, 2.0, -1.0, 3.0, 3.0, 0.0], &[2, 3]));
    /// let predicted = logits.argmax_axis(1, false);
    /// assert_eq!(predicted.to_vec(), vec![1, 0]);
    /// let labels = Tensor::<usize>::from(vec![1, 2]);
    /// assert_eq!(predicted.equal(&labels).count(), 1); // one correct prediction
    /// ```
    #[track_caller]
    pub fn argmax_axis(self, axis: usize, keepdim: bool) -> Tensor<usize> {
        self.value_ref().argmax_axis(axis, keepdim)
    }

    /// The index of the first minimum of the value along `axis` (`torch.argmin(x, dim,
    /// keepdim)`); a NaN counts as the minimum. Nothing is recorded. See
    /// [`Tensor::argmin_axis`].
    ///
    /// # Panics
    /// If `axis` is out of range or the axis is empty.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::from_vec(vec![0.1, 2.0, -1.0, 3.0, 3.0, 0.0], &[2, 3]));
    /// assert_eq!(x.argmin_axis(0, true).to_vec(), vec![0, 0, 0]);
    /// assert_eq!(x.argmin_axis(0, true).shape(), &[1, 3]);
    /// ```
    #[track_caller]
    pub fn argmin_axis(self, axis: usize, keepdim: bool) -> Tensor<usize> {
        self.value_ref().argmin_axis(axis, keepdim)
    }
}
