//! Masks and indices: comparisons of float tensors giving `Tensor<bool>`, logical operations,
//! counts, conversions, `arange` and the indices of extrema.

use std::ops::{BitAnd, BitOr, BitXor, Not};

use super::Tensor;
use super::shape::{self, Shape};
use crate::{Element, Float};

/// Applies `f` elementwise to `a` and `b` broadcast together (NumPy rules), for any element
/// types: the comparisons and logical operations. Single-threaded: one pass of a cheap `f`
/// over contiguous slices is memory-bound already.
///
/// # Panics
/// If the shapes cannot be broadcast together (naming `op`). Callers check with
/// [`check_broadcast`] first, in their own body, so that the panic names the user's line.
fn zip_elements<A: Element, B: Element, R: Element>(
    op: &str,
    a: &Tensor<A>,
    b: &Tensor<B>,
    f: impl Fn(A, B) -> R,
) -> Tensor<R> {
    if let (Some(x), Some(y)) = (a.as_rank0(), b.as_rank0()) {
        return Tensor::scalar(f(x, y));
    }
    let (xa, xb) = (a.as_slice(), b.as_slice());
    if shape::same(a.shape(), b.shape()) {
        let values = xa.iter().zip(xb).map(|(&x, &y)| f(x, y));
        return Tensor::from_exact_iter(Shape::from_slice(a.shape()), values);
    }
    let out_shape = shape::broadcast_shape(op, a.shape(), b.shape());
    if b.numel() == 1 && shape::same(a.shape(), &out_shape) {
        let y = xb[0];
        return Tensor::from_exact_iter(out_shape, xa.iter().map(|&x| f(x, y)));
    }
    if a.numel() == 1 && shape::same(b.shape(), &out_shape) {
        let x = xa[0];
        return Tensor::from_exact_iter(out_shape, xb.iter().map(|&y| f(x, y)));
    }
    let (sa, sb) = (
        shape::broadcast_strides(a.shape(), &out_shape),
        shape::broadcast_strides(b.shape(), &out_shape),
    );
    let rank = out_shape.len();
    Tensor::build(Shape::from_slice(&out_shape), |out| {
        if out.is_empty() {
            return;
        }
        let inner = out_shape[rank - 1];
        let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
        let mut index: Shape = smallvec::smallvec![0; rank - 1];
        let (mut oa, mut ob) = (0, 0);
        for row in out.chunks_exact_mut(inner) {
            // The innermost stride of each side is 1 (read along) or 0 (one value repeated):
            // a loop per case keeps the rows contiguous slices, which vectorise.
            match (ia, ib) {
                (1, 1) => {
                    let (ra, rb) = (&xa[oa..oa + inner], &xb[ob..ob + inner]);
                    for ((v, &x), &y) in row.iter_mut().zip(ra).zip(rb) {
                        *v = f(x, y);
                    }
                }
                (1, _) => {
                    let y = xb[ob];
                    for (v, &x) in row.iter_mut().zip(&xa[oa..oa + inner]) {
                        *v = f(x, y);
                    }
                }
                (_, 1) => {
                    let x = xa[oa];
                    for (v, &y) in row.iter_mut().zip(&xb[ob..ob + inner]) {
                        *v = f(x, y);
                    }
                }
                _ => row.fill(f(xa[oa], xb[ob])),
            }
            for d in (0..rank - 1).rev() {
                index[d] += 1;
                oa += sa[d];
                ob += sb[d];
                if index[d] < out_shape[d] {
                    break;
                }
                oa -= sa[d] * out_shape[d];
                ob -= sb[d] * out_shape[d];
                index[d] = 0;
            }
        }
    })
}

/// Panics, naming `op` and both shapes, unless they broadcast together.
#[track_caller]
fn check_broadcast(op: &str, a: &[usize], b: &[usize]) {
    if !shape::same(a, b) {
        shape::broadcast_shape(op, a, b);
    }
}

/// `true` for NaN: the only value not ordered against itself (`false` for every value of a
/// type without NaN).
#[inline(always)]
fn unordered<T: PartialOrd>(x: T) -> bool {
    x.partial_cmp(&x).is_none()
}

macro_rules! comparisons {
    ($($name:ident, $sym:tt, $doc:literal, $example:literal;)*) => {
        /// Elementwise comparisons, giving masks. They broadcast as NumPy and PyTorch do; the
        /// other operand is anything that converts into a tensor: a tensor, `&tensor` or a scalar.
        impl<T: Element + PartialOrd> Tensor<T> {
            $(
                #[doc = $doc]
                ///
                /// Elementwise, with NumPy broadcasting. Floats compare as IEEE 754 says: every
                /// comparison with NaN is `false`, except `not_equal`, which is `true`. Booleans
                /// order `false < true`.
                ///
                /// # Panics
                /// If the shapes cannot be broadcast together.
                ///
                /// ```
                /// use tapegrad::Tensor;
                /// let x = Tensor::<f32>::from_vec(vec![-1.0, 0.0, 2.0, f32::NAN], &[2, 2]);
                #[doc = $example]
                /// // Broadcasting: a [2] row against the [2, 2] tensor.
                #[doc = concat!("assert_eq!(x.", stringify!($name), "(&Tensor::from(vec![0.0, 1.0])).shape(), &[2, 2]);")]
                /// ```
                #[track_caller]
                pub fn $name(&self, other: impl Into<Tensor<T>>) -> Tensor<bool> {
                    let other = other.into();
                    check_broadcast(stringify!($name), self.shape(), other.shape());
                    zip_elements(stringify!($name), self, &other, |x, y| x $sym y)
                }
            )*
        }
    };
}

comparisons! {
    lt, <, "The mask of `self < other` (`torch.lt`).",
        "assert_eq!(x.lt(0.0).to_vec(), vec![true, false, false, false]);";
    le, <=, "The mask of `self <= other` (`torch.le`).",
        "assert_eq!(x.le(0.0).to_vec(), vec![true, true, false, false]);";
    gt, >, "The mask of `self > other` (`torch.gt`).",
        "assert_eq!(x.gt(0.0).to_vec(), vec![false, false, true, false]);";
    ge, >=, "The mask of `self >= other` (`torch.ge`).",
        "assert_eq!(x.ge(0.0).to_vec(), vec![false, true, true, false]);";
    equal, ==, "The mask of `self == other` (`torch.eq`; named after NumPy's `np.equal`, since \
        `eq` is [`PartialEq`]'s, which compares whole tensors).",
        "assert_eq!(x.equal(2.0).to_vec(), vec![false, false, true, false]);";
    not_equal, !=, "The mask of `self != other` (`torch.ne`; named after NumPy's `np.not_equal`, \
        since `ne` is [`PartialEq`]'s).",
        "assert_eq!(x.not_equal(2.0).to_vec(), vec![true, true, false, true]);";
}

/// Masks of special float values.
impl<T: Float> Tensor<T> {
    /// The mask of NaN elements (`torch.isnan`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f64>::from(vec![1.0, f64::NAN, f64::INFINITY]);
    /// assert_eq!(x.isnan().to_vec(), vec![false, true, false]);
    /// ```
    pub fn isnan(&self) -> Tensor<bool> {
        self.map_to(|x| x.is_nan())
    }

    /// The mask of finite elements, neither infinite nor NaN (`torch.isfinite`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f64>::from(vec![1.0, f64::NAN, f64::NEG_INFINITY]);
    /// assert_eq!(x.isfinite().to_vec(), vec![true, false, false]);
    /// ```
    pub fn isfinite(&self) -> Tensor<bool> {
        self.map_to(|x| x.is_finite())
    }

    /// The mask of infinite elements, `+inf` or `-inf` (`torch.isinf`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f64>::from(vec![1.0, f64::NAN, f64::NEG_INFINITY]);
    /// assert_eq!(x.isinf().to_vec(), vec![false, false, true]);
    /// ```
    pub fn isinf(&self) -> Tensor<bool> {
        self.map_to(|x| !x.is_finite() && !x.is_nan())
    }
}

impl<T: Element> Tensor<T> {
    /// `f` of every element, as a tensor of this shape with another element type.
    fn map_to<R: Element>(&self, f: impl Fn(T) -> R) -> Tensor<R> {
        Tensor::from_exact_iter(
            Shape::from_slice(self.shape()),
            self.as_slice().iter().map(|&x| f(x)),
        )
    }
}

/// Indices of extrema.
impl<T: Element + PartialOrd> Tensor<T> {
    /// The index of the first maximum along `axis` (`torch.argmax(x, dim, keepdim)`), keeping
    /// the axis with size 1 when `keepdim`.
    ///
    /// As in PyTorch, a NaN counts as the maximum: the index of the first NaN is returned
    /// when there is one. Of tied maxima, the first index is returned.
    ///
    /// # Panics
    /// If `axis` is out of range (a rank-0 tensor has no axis) or the axis is empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1., 5., 5., 4., 2., 0.], &[2, 3]);
    /// assert_eq!(x.argmax_axis(1, false).to_vec(), vec![1, 0]); // the first of the tied 5s
    /// assert_eq!(x.argmax_axis(0, true).shape(), &[1, 3]);
    /// let with_nan = Tensor::<f32>::from(vec![1.0, f32::NAN, 7.0]);
    /// assert_eq!(with_nan.argmax_axis(0, false).item(), 1);
    /// ```
    #[track_caller]
    pub fn argmax_axis(&self, axis: usize, keepdim: bool) -> Tensor<usize> {
        check_reduction_axis("argmax_axis", axis, self.shape());
        arg_extremum(self, axis, keepdim, |v, best| v > best)
    }

    /// The index of the first minimum along `axis` (`torch.argmin(x, dim, keepdim)`), keeping
    /// the axis with size 1 when `keepdim`.
    ///
    /// As in PyTorch, a NaN counts as the minimum (NaN propagates through `min` as through
    /// `max`): the index of the first NaN is returned when there is one. Of tied minima, the
    /// first index is returned.
    ///
    /// # Panics
    /// If `axis` is out of range (a rank-0 tensor has no axis) or the axis is empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![1., 5., 5., 4., 0., 0.], &[2, 3]);
    /// assert_eq!(x.argmin_axis(1, false).to_vec(), vec![0, 1]); // the first of the tied 0s
    /// assert_eq!(x.argmin_axis(0, false).to_vec(), vec![0, 1, 1]);
    /// ```
    #[track_caller]
    pub fn argmin_axis(&self, axis: usize, keepdim: bool) -> Tensor<usize> {
        check_reduction_axis("argmin_axis", axis, self.shape());
        arg_extremum(self, axis, keepdim, |v, best| v < best)
    }
}

#[track_caller]
fn check_reduction_axis(op: &str, axis: usize, shape: &[usize]) {
    shape::check_axis(op, axis, shape);
    assert!(
        shape[axis] > 0,
        "tapegrad: {op}: axis {axis} of shape {shape:?} is empty, so it has no extremum"
    );
}

/// The index along `axis` of the first element that no later one beats (`better(v, best)`),
/// a NaN beating every number. `axis` is valid and not empty.
fn arg_extremum<T: Element + PartialOrd>(
    t: &Tensor<T>,
    axis: usize,
    keepdim: bool,
    better: impl Fn(T, T) -> bool,
) -> Tensor<usize> {
    let (_, n, inner) = shape::split_at_axis(t.shape(), axis);
    let x = t.as_slice();
    // Once `best` is NaN, nothing replaces it: neither `better` (false against NaN) nor a NaN.
    let beats = |v: T, best: T| better(v, best) || (unordered(v) && !unordered(best));
    Tensor::build(shape::reduced_shape(t.shape(), axis, keepdim), |out| {
        if out.is_empty() {
            return;
        }
        if inner == 1 {
            for (slot, row) in out.iter_mut().zip(x.chunks_exact(n)) {
                let (mut arg, mut best) = (0, row[0]);
                for (j, &v) in row.iter().enumerate().skip(1) {
                    if beats(v, best) {
                        (arg, best) = (j, v);
                    }
                }
                *slot = arg;
            }
            return;
        }
        // Along an outer axis: sweep the rows of the block in order, keeping a running best
        // per column, so that every read is contiguous.
        let mut best = x[..inner].to_vec();
        for (o, args) in out.chunks_exact_mut(inner).enumerate() {
            let block = &x[o * n * inner..(o + 1) * n * inner];
            best.copy_from_slice(&block[..inner]);
            for (j, row) in block.chunks_exact(inner).enumerate().skip(1) {
                for ((b, a), &v) in best.iter_mut().zip(args.iter_mut()).zip(row) {
                    if beats(v, *b) {
                        (*a, *b) = (j, v);
                    }
                }
            }
        }
    })
}

/// Logical operations, counts and conversions of masks.
impl Tensor<bool> {
    /// Elementwise AND with NumPy broadcasting (`torch.logical_and`; also the `&` operator).
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<bool>::from_vec(vec![true, true, false, false], &[2, 2]);
    /// let b = Tensor::<bool>::from_vec(vec![true, false], &[2]);
    /// assert_eq!(a.logical_and(&b).to_vec(), vec![true, false, false, false]);
    /// assert_eq!((&a & &b), a.logical_and(&b));
    /// ```
    #[track_caller]
    pub fn logical_and(&self, other: &Tensor<bool>) -> Tensor<bool> {
        check_broadcast("logical_and", self.shape(), other.shape());
        zip_elements("logical_and", self, other, |x, y| x & y)
    }

    /// Elementwise OR with NumPy broadcasting (`torch.logical_or`; also the `|` operator).
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<bool>::from_vec(vec![true, true, false, false], &[2, 2]);
    /// let b = Tensor::<bool>::from_vec(vec![true, false], &[2]);
    /// assert_eq!(a.logical_or(&b).to_vec(), vec![true, true, true, false]);
    /// assert_eq!((&a | &b), a.logical_or(&b));
    /// ```
    #[track_caller]
    pub fn logical_or(&self, other: &Tensor<bool>) -> Tensor<bool> {
        check_broadcast("logical_or", self.shape(), other.shape());
        zip_elements("logical_or", self, other, |x, y| x | y)
    }

    /// Elementwise exclusive OR with NumPy broadcasting (`torch.logical_xor`; also the `^`
    /// operator).
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<bool>::from_vec(vec![true, true, false, false], &[2, 2]);
    /// let b = Tensor::<bool>::from_vec(vec![true, false], &[2]);
    /// assert_eq!(a.logical_xor(&b).to_vec(), vec![false, true, true, false]);
    /// assert_eq!((&a ^ &b), a.logical_xor(&b));
    /// ```
    #[track_caller]
    pub fn logical_xor(&self, other: &Tensor<bool>) -> Tensor<bool> {
        check_broadcast("logical_xor", self.shape(), other.shape());
        zip_elements("logical_xor", self, other, |x, y| x ^ y)
    }

    /// Elementwise NOT (`torch.logical_not`; also the `!` operator).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<bool>::from(vec![true, false]);
    /// assert_eq!(a.logical_not().to_vec(), vec![false, true]);
    /// assert_eq!(!&a, a.logical_not());
    /// ```
    pub fn logical_not(&self) -> Tensor<bool> {
        self.map(|x| !x)
    }

    /// The number of `true` elements (`torch.count_nonzero(mask)`, or `mask.sum()`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f32>::from_vec(vec![-1.0, 3.0, 2.0, 0.0], &[2, 2]);
    /// assert_eq!(x.gt(0.0).count(), 2);
    /// assert_eq!(Tensor::<bool>::from_vec(vec![], &[0]).count(), 0);
    /// ```
    pub fn count(&self) -> usize {
        // A sum of 0/1 rather than `filter().count()`: it vectorises.
        self.as_slice().iter().map(|&b| usize::from(b)).sum()
    }

    /// `true` when at least one element is `true` (`torch.any`); `false` for an empty mask.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert!(Tensor::<bool>::from(vec![false, true]).any());
    /// assert!(!Tensor::<bool>::from_vec(vec![], &[0]).any());
    /// ```
    pub fn any(&self) -> bool {
        self.as_slice().iter().any(|&b| b)
    }

    /// `true` when every element is `true` (`torch.all`); `true` for an empty mask.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert!(!Tensor::<bool>::from(vec![false, true]).all());
    /// assert!(Tensor::<bool>::from_vec(vec![], &[0]).all());
    /// ```
    pub fn all(&self) -> bool {
        self.as_slice().iter().all(|&b| b)
    }

    /// The mask as floats: 1 for `true`, 0 for `false` (`mask.float()` / `mask.double()`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::<f32>::from(vec![-1.0, 3.0, 2.0]);
    /// let m = x.gt(0.0).to_float::<f32>();
    /// assert_eq!(m.to_vec(), vec![0.0, 1.0, 1.0]);
    /// assert_eq!((&x * &m).to_vec(), vec![0.0, 3.0, 2.0]);
    /// ```
    pub fn to_float<U: Float>(&self) -> Tensor<U> {
        self.map_to(|b| if b { U::ONE } else { U::ZERO })
    }
}

impl Not for &Tensor<bool> {
    type Output = Tensor<bool>;
    fn not(self) -> Tensor<bool> {
        self.logical_not()
    }
}

impl Not for Tensor<bool> {
    type Output = Tensor<bool>;
    fn not(self) -> Tensor<bool> {
        self.logical_not()
    }
}

macro_rules! logical_operators {
    ($($trait:ident, $method:ident, $logical:ident;)*) => {$(
        impl $trait<&Tensor<bool>> for &Tensor<bool> {
            type Output = Tensor<bool>;
            #[track_caller]
            fn $method(self, other: &Tensor<bool>) -> Tensor<bool> {
                self.$logical(other)
            }
        }
        impl $trait<Tensor<bool>> for Tensor<bool> {
            type Output = Tensor<bool>;
            #[track_caller]
            fn $method(self, other: Tensor<bool>) -> Tensor<bool> {
                self.$logical(&other)
            }
        }
    )*};
}

logical_operators! {
    BitAnd, bitand, logical_and;
    BitOr, bitor, logical_or;
    BitXor, bitxor, logical_xor;
}

/// Index tensors.
impl Tensor<usize> {
    /// `0, 1, ..., n - 1` as a rank-1 tensor of `n` indices (`torch.arange(n)`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<usize>::arange(4).to_vec(), vec![0, 1, 2, 3]);
    /// assert_eq!(Tensor::<usize>::arange(0).shape(), &[0]);
    /// ```
    #[track_caller]
    pub fn arange(n: usize) -> Tensor<usize> {
        shape::checked_numel::<usize>("Tensor::arange", &[n]);
        Tensor::from_exact_iter(Shape::from_slice(&[n]), 0..n)
    }

    /// `start, start + 1, ..., end - 1` as a rank-1 tensor (`torch.arange(start, end)`); empty
    /// when `start == end`.
    ///
    /// # Panics
    /// If `start > end`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<usize>::arange_from(2, 5).to_vec(), vec![2, 3, 4]);
    /// ```
    #[track_caller]
    pub fn arange_from(start: usize, end: usize) -> Tensor<usize> {
        assert!(
            start <= end,
            "tapegrad: arange_from: start {start} is above end {end}"
        );
        Tensor::from_exact_iter(Shape::from_slice(&[end - start]), start..end)
    }

    /// The indices as floats (`t.float()` / `t.double()`), rounded to the nearest float when
    /// they exceed its integer precision (above 2^24 for `f32`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let i = Tensor::<usize>::arange(3);
    /// assert_eq!(i.to_float::<f64>().to_vec(), vec![0.0, 1.0, 2.0]);
    /// ```
    pub fn to_float<U: Float>(&self) -> Tensor<U> {
        self.map_to(U::from_usize)
    }
}
