//! Eager kernels on [`Tensor`]: elementwise maps, broadcasting arithmetic, reductions, layout
//! changes, matrix products and softmax. They are the fast path of the first-order backward pass.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::copy::gather;
use super::shape::{self, Shape};
use super::{Tensor, Work, parallel, simd};
use crate::{Element, Float};

/// Applies `f` elementwise to `a` and `b` broadcast together (NumPy rules).
#[track_caller]
fn zip_broadcast<T: Float>(
    op: &str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    work: Work,
    f: impl Fn(T, T) -> T + Sync,
) -> Tensor<T> {
    if let (Some(x), Some(y)) = (a.as_rank0(), b.as_rank0()) {
        return Tensor::scalar(f(x, y));
    }
    if shape::same(a.shape(), b.shape()) {
        return parallel::zip(a.shape(), a.as_slice(), b.as_slice(), work, &f);
    }
    let out_shape = shape::broadcast_shape(op, a.shape(), b.shape());
    if b.numel() == 1 && shape::same(a.shape(), &out_shape) {
        let y = b.as_slice()[0];
        return a.map_elementwise(work, |x| f(x, y));
    }
    if a.numel() == 1 && shape::same(b.shape(), &out_shape) {
        let x = a.as_slice()[0];
        return b.map_elementwise(work, |y| f(x, y));
    }
    let (sa, sb) = (
        shape::broadcast_strides(a.shape(), &out_shape),
        shape::broadcast_strides(b.shape(), &out_shape),
    );
    let (xa, xb) = (a.as_slice(), b.as_slice());
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
            for (j, v) in row.iter_mut().enumerate() {
                *v = f(xa[oa + j * ia], xb[ob + j * ib]);
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

impl<T: Float> Tensor<T> {
    /// Elementwise `f(x, y)` with NumPy broadcasting, in one pass: for backward rules that would
    /// otherwise chain several kernels (and allocate a buffer for each).
    #[track_caller]
    pub(crate) fn zip_map(&self, op: &str, other: &Tensor<T>, f: impl Fn(T, T) -> T + Sync) -> Tensor<T> {
        zip_broadcast(op, self, other, Work::Light, f)
    }

    /// [`zip_map`](Self::zip_map) for a function that costs `work` per element (which sets when
    /// large tensors are split between threads).
    #[track_caller]
    pub(crate) fn zip_map_work(
        &self,
        op: &str,
        other: &Tensor<T>,
        work: Work,
        f: impl Fn(T, T) -> T + Sync,
    ) -> Tensor<T> {
        zip_broadcast(op, self, other, work, f)
    }
}

macro_rules! binary_methods {
    ($($name:ident, $trait:ident, $sym:tt, $doc:literal;)*) => {
        impl<T: Float> Tensor<T> {
            $(
                #[doc = concat!("Elementwise ", $doc, " with NumPy broadcasting (also the `", stringify!($sym), "` operator).")]
                ///
                /// # Panics
                /// If the shapes cannot be broadcast together.
                ///
                /// ```
                /// use tapegrad::Tensor;
                /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
                /// let b = Tensor::<f32>::from_vec(vec![10., 20.], &[2]);
                #[doc = concat!("assert_eq!(a.", stringify!($name), "(&b).shape(), &[2, 2]);")]
                /// ```
                #[track_caller]
                pub fn $name(&self, other: &Tensor<T>) -> Tensor<T> {
                    zip_broadcast(stringify!($name), self, other, Work::Light, |x, y| x $sym y)
                }
            )*
        }
        $(
            impl<T: Float> $trait<&Tensor<T>> for &Tensor<T> {
                type Output = Tensor<T>;
                #[track_caller]
                fn $name(self, other: &Tensor<T>) -> Tensor<T> {
                    Tensor::$name(self, other)
                }
            }
            impl<T: Float> $trait<Tensor<T>> for Tensor<T> {
                type Output = Tensor<T>;
                #[track_caller]
                fn $name(self, other: Tensor<T>) -> Tensor<T> {
                    Tensor::$name(&self, &other)
                }
            }
            impl<T: Float> $trait<T> for &Tensor<T> {
                type Output = Tensor<T>;
                fn $name(self, other: T) -> Tensor<T> {
                    self.map_elementwise(Work::Light, |x| x $sym other)
                }
            }
            impl<T: Float> $trait<T> for Tensor<T> {
                type Output = Tensor<T>;
                fn $name(self, other: T) -> Tensor<T> {
                    self.map_elementwise(Work::Light, |x| x $sym other)
                }
            }
        )*
    };
}

binary_methods! {
    add, Add, +, "addition";
    sub, Sub, -, "subtraction";
    mul, Mul, *, "multiplication";
    div, Div, /, "division";
}

impl<T: Float> Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map_elementwise(Work::Light, |x| -x)
    }
}

impl<T: Float> Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map_elementwise(Work::Light, |x| -x)
    }
}

macro_rules! unary_methods {
    ($($name:ident, $work:ident, $doc:literal, |$x:ident| $body:expr;)*) => {
        /// The elementwise functions on one number: the tensor methods map them, and the rank-0
        /// forward path calls them directly (building a rank-0 tensor to map cost ~80
        /// instructions per scalar node).
        pub(crate) mod elementwise {
            use crate::Float;
            $(
                #[doc = $doc]
                #[inline]
                pub(crate) fn $name<T: Float>($x: T) -> T {
                    $body
                }
            )*
        }

        impl<T: Float> Tensor<T> {
            $(
                #[doc = $doc]
                ///
                /// ```
                /// use tapegrad::Tensor;
                /// let t = Tensor::<f64>::from_vec(vec![0.5, 2.0], &[2]);
                #[doc = concat!("assert_eq!(t.", stringify!($name), "().shape(), &[2]);")]
                /// ```
                pub fn $name(&self) -> Tensor<T> {
                    self.map_elementwise(Work::$work, elementwise::$name)
                }
            )*
        }
    };
}

unary_methods! {
    exp, Heavy, "Elementwise `e^x`.", |x| x.exp();
    ln, Heavy, "Elementwise natural logarithm.", |x| x.ln();
    sqrt, Light, "Elementwise square root.", |x| x.sqrt();
    abs, Light, "Elementwise absolute value.", |x| x.abs();
    tanh, Heavy, "Elementwise hyperbolic tangent.", |x| x.tanh();
    sigmoid, Heavy, "Elementwise logistic sigmoid `1 / (1 + e^-x)`, computed without overflow.", |x| super::sigmoid(x);
    relu, Light, "Elementwise `max(x, 0)`; NaN stays NaN, as in PyTorch.", |x| if x <= T::ZERO { T::ZERO } else { x };
    sin, Heavy, "Elementwise sine.", |x| x.sin();
    cos, Heavy, "Elementwise cosine.", |x| x.cos();
    sign, Light, "Elementwise sign: -1, 0 or 1.", |x| if x > T::ZERO { T::ONE } else if x < T::ZERO { -T::ONE } else { T::ZERO };
    step, Light, "Elementwise Heaviside step: 1 where `x > 0`, else 0 (the derivative of relu).", |x| if x > T::ZERO { T::ONE } else { T::ZERO };
}

/// The logistic function, without overflow: with `e = exp(-|x|)` (never above 1) it is
/// `1 / (1 + e)` for `x ≥ 0` and `e / (1 + e)` below. One `exp` and a select of the numerator
/// rather than a branch around two: the loop over a tensor vectorises, where the branch was
/// mispredicted on mixed signs (2²⁰ normal samples: 15.7 ms, BENCHMARKS.md). NaN stays NaN.
fn sigmoid<T: Float>(x: T) -> T {
    let e = (-x.abs()).exp();
    let numerator = if x >= T::ZERO { T::ONE } else { e };
    numerator / (T::ONE + e)
}

impl<T: Float> Tensor<T> {
    /// Elementwise `x^p` for a real exponent.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f64>::from(4.0).powf(0.5).item(), 2.0);
    /// ```
    pub fn powf(&self, p: T) -> Tensor<T> {
        if p == T::from_f64(0.5) {
            // PyTorch's `pow(x, 0.5)` is `sqrt(x)`: correctly rounded, and `-0` at `-0`.
            return self.map_elementwise(Work::Heavy, |x| x.sqrt());
        }
        self.map_elementwise(Work::Heavy, |x| x.powf(p))
    }

    /// Elementwise `x^n` for an integer exponent.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f64>::from(3.0).powi(2).item(), 9.0);
    /// ```
    pub fn powi(&self, n: i32) -> Tensor<T> {
        self.map_elementwise(Work::Heavy, |x| x.powi(n))
    }

    /// The sum of all elements, as a scalar.
    ///
    /// Summed pairwise, as NumPy and PyTorch do: the rounding error grows with the logarithm of
    /// the length rather than with the length, and the sum vectorises.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::from(vec![1., 2., 3.]).sum().item(), 6.0);
    /// ```
    pub fn sum(&self) -> Tensor<T> {
        Tensor::scalar(pairwise_sum(self.as_slice()))
    }

    /// The mean of all elements, as a scalar.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::from(vec![1., 2., 3.]).mean().item(), 2.0);
    /// ```
    pub fn mean(&self) -> Tensor<T> {
        Tensor::scalar(pairwise_sum(self.as_slice()) / T::from_usize(self.numel()))
    }

    /// Sums over `axis`, keeping it with size 1 when `keepdim`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.sum_axis(1, true).shape(), &[2, 1]);
    /// assert_eq!(t.sum_axis(1, false).to_vec(), vec![6., 15.]);
    /// ```
    #[track_caller]
    pub fn sum_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        shape::check_axis("sum_axis", axis, self.shape());
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        let x = self.as_slice();
        if inner == 1 && n > 0 {
            // Each output is the sum of one contiguous row.
            return Tensor::build(shape::reduced_shape(self.shape(), axis, keepdim), |out| {
                simd::run(
                    #[inline(always)]
                    || {
                        for (o, row) in out.iter_mut().zip(x.chunks_exact(n)) {
                            *o = row_sum(row);
                        }
                    },
                )
            });
        }
        Tensor::build(shape::reduced_shape(self.shape(), axis, keepdim), |out| {
            for o in 0..outer {
                let acc = &mut out[o * inner..(o + 1) * inner];
                for j in 0..n {
                    let row = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
            }
        })
    }

    /// Means over `axis`, keeping it with size 1 when `keepdim`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.mean_axis(0, false).to_vec(), vec![2.5, 3.5, 4.5]);
    /// ```
    #[track_caller]
    pub fn mean_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        let n = T::from_usize(self.shape().get(axis).copied().unwrap_or(1));
        self.sum_axis(axis, keepdim).map(|s| s / n)
    }

    /// Maximum over `axis`, keeping it with size 1 when `keepdim`.
    ///
    /// # Panics
    /// If `axis` is out of range or the axis is empty.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 5., 3., 4., 2., 6.], &[2, 3]);
    /// assert_eq!(t.max_axis(1, false).to_vec(), vec![5., 6.]);
    /// ```
    #[track_caller]
    pub fn max_axis(&self, axis: usize, keepdim: bool) -> Tensor<T> {
        let (values, _) = self.max_and_argmax(axis, "max_axis");
        Tensor::from_parts(shape::reduced_shape(self.shape(), axis, keepdim), values)
    }

    /// A tensor of this shape with 1 at the first maximum along `axis` and 0 elsewhere: the
    /// derivative of `max_axis` (as in PyTorch, ties send the gradient to one element only).
    #[track_caller]
    pub(crate) fn argmax_mask(&self, axis: usize) -> Tensor<T> {
        let (_, arg) = self.max_and_argmax(axis, "max_axis");
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        Tensor::build(Shape::from_slice(&self.shape), |mask| {
            for o in 0..outer {
                for i in 0..inner {
                    mask[(o * n + arg[o * inner + i]) * inner + i] = T::ONE;
                }
            }
        })
    }

    #[track_caller]
    fn max_and_argmax(&self, axis: usize, op: &str) -> (Vec<T>, Vec<usize>) {
        shape::check_axis(op, axis, self.shape());
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        assert!(
            n > 0,
            "tapegrad: {op}: axis {axis} of shape {:?} is empty",
            self.shape()
        );
        let x = self.as_slice();
        let mut values = x[..0].to_vec();
        let mut args = vec![0; outer * inner];
        for o in 0..outer {
            values.extend_from_slice(&x[o * n * inner..(o * n + 1) * inner]);
            for j in 1..n {
                let row = &x[(o * n + j) * inner..(o * n + j + 1) * inner];
                for (i, &v) in row.iter().enumerate() {
                    let best = &mut values[o * inner + i];
                    // NaN propagates, as in NumPy and PyTorch.
                    if v > *best || (v.is_nan() && !best.is_nan()) {
                        *best = v;
                        args[o * inner + i] = j;
                    }
                }
            }
        }
        (values, args)
    }

    /// Sums a broadcast tensor back down to `shape`: the adjoint of [`Tensor::broadcast_to`].
    ///
    /// # Panics
    /// If `shape` does not broadcast to this tensor's shape.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::ones(&[2, 3]);
    /// assert_eq!(t.sum_to(&[1, 3]).to_vec(), vec![2., 2., 2.]);
    /// assert_eq!(t.sum_to(&[]).item(), 6.);
    /// ```
    #[track_caller]
    pub fn sum_to(&self, target: &[usize]) -> Tensor<T> {
        if shape::same(target, self.shape()) {
            return self.clone();
        }
        assert!(
            shape::broadcasts_to(target, self.shape()),
            "tapegrad: sum_to: shape {target:?} does not broadcast to {:?}",
            self.shape()
        );
        let lead = self.rank() - target.len();
        let mut t = if lead > 0 {
            let rest = &self.shape()[lead..];
            self.reshape(&[shape::numel(&self.shape()[..lead]), shape::numel(rest)])
                .sum_axis(0, false)
                .reshape(rest)
        } else {
            self.clone()
        };
        for (axis, &d) in target.iter().enumerate() {
            if d == 1 && t.shape()[axis] != 1 {
                t = t.sum_axis(axis, true);
            }
        }
        t
    }
}

/// Layout changes: they move elements and work for every element type.
impl<T: Element> Tensor<T> {
    /// Repeats this tensor along broadcast axes to `shape` (NumPy `broadcast_to`), copying.
    ///
    /// # Panics
    /// If this shape does not broadcast to `shape`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2.], &[2, 1]);
    /// assert_eq!(t.broadcast_to(&[2, 2]).to_vec(), vec![1., 1., 2., 2.]);
    /// ```
    #[track_caller]
    pub fn broadcast_to(&self, target: &[usize]) -> Tensor<T> {
        shape::checked_numel::<T>("broadcast_to", target);
        if shape::same(target, self.shape()) {
            return self.clone();
        }
        assert!(
            shape::broadcasts_to(self.shape(), target),
            "tapegrad: broadcast_to: shape {:?} cannot be broadcast to {target:?}",
            self.shape()
        );
        if self.numel() == 1 {
            return Tensor::full(target, self.as_slice()[0]);
        }
        let strides = shape::broadcast_strides(self.shape(), target);
        gather(self.as_slice(), 0, &strides, Shape::from_slice(target))
    }

    /// The same elements under another shape with as many elements (no copy of the data).
    ///
    /// # Panics
    /// If the element counts differ.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::zeros(&[2, 3]);
    /// assert_eq!(t.reshape(&[3, 2]).shape(), &[3, 2]);
    /// ```
    #[track_caller]
    pub fn reshape(&self, target: &[usize]) -> Tensor<T> {
        shape::checked_numel::<T>("reshape", target);
        assert!(
            shape::numel(target) == self.numel(),
            "tapegrad: reshape: cannot reshape {:?} ({} elements) to {target:?} ({} elements)",
            self.shape(),
            self.numel(),
            shape::numel(target)
        );
        Tensor {
            shape: Shape::from_slice(target),
            data: self.data.clone(),
        }
    }

    /// Swaps axes `a0` and `a1` (copying into the new row-major order).
    ///
    /// # Panics
    /// If an axis is out of range.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.transpose(0, 1).to_vec(), vec![1., 4., 2., 5., 3., 6.]);
    /// ```
    #[track_caller]
    pub fn transpose(&self, a0: usize, a1: usize) -> Tensor<T> {
        shape::check_axis("transpose", a0, self.shape());
        shape::check_axis("transpose", a1, self.shape());
        if a0 == a1 {
            return self.clone();
        }
        let mut out_shape = Shape::from_slice(self.shape());
        out_shape.swap(a0, a1);
        let mut strides = shape::strides(self.shape());
        strides.swap(a0, a1);
        gather(self.as_slice(), 0, &strides, out_shape)
    }

    /// The slice `start..start + len` along `axis` (copying).
    ///
    /// # Panics
    /// If `axis` is out of range or the slice runs past the end.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.narrow(1, 1, 2).to_vec(), vec![2., 3., 5., 6.]);
    /// ```
    #[track_caller]
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor<T> {
        shape::check_axis("narrow", axis, self.shape());
        assert!(
            start
                .checked_add(len)
                .is_some_and(|end| end <= self.shape()[axis]),
            "tapegrad: narrow: range {start}..{} is out of bounds for axis {axis} of shape {:?}",
            start.saturating_add(len),
            self.shape()
        );
        let mut out_shape = Shape::from_slice(self.shape());
        out_shape[axis] = len;
        let strides = shape::strides(self.shape());
        gather(self.as_slice(), start * strides[axis], &strides, out_shape)
    }

    /// Places this tensor at `start` along `axis` inside zeros of shape `full`: the adjoint of
    /// [`Tensor::narrow`].
    #[track_caller]
    pub(crate) fn unnarrow(&self, full: &[usize], axis: usize, start: usize) -> Tensor<T> {
        let (outer, n, inner) = shape::split_at_axis(full, axis);
        let len = self.shape()[axis];
        let src = self.as_slice();
        Tensor::build(Shape::from_slice(full), |out| {
            for o in 0..outer {
                let dst = (o * n + start) * inner;
                out[dst..dst + len * inner].copy_from_slice(&src[o * len * inner..(o + 1) * len * inner]);
            }
        })
    }
}

impl<T: Float> Tensor<T> {
    /// Adds `g` into the slice of this tensor that starts at `start` along `axis` (`g` has this
    /// tensor's shape except along `axis`): `self += g.unnarrow(self.shape(), axis, start)`
    /// without the padded copy. The backward pass accumulates a narrow's gradient this way.
    pub(crate) fn add_narrowed(&mut self, g: &Tensor<T>, axis: usize, start: usize) {
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        let block = g.shape()[axis] * inner;
        let src = g.as_slice();
        let dst = self.as_mut_slice();
        for o in 0..outer {
            let at = (o * n + start) * inner;
            for (a, &b) in dst[at..at + block]
                .iter_mut()
                .zip(&src[o * block..(o + 1) * block])
            {
                *a += b;
            }
        }
    }
}

impl<T: Float> Tensor<T> {
    /// Softmax along `axis`: `exp(x - max) / sum(exp(x - max))`, stable for large inputs.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f64>::from_vec(vec![1000., 1000.], &[2]);
    /// assert_eq!(t.softmax(0).to_vec(), vec![0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn softmax(&self, axis: usize) -> Tensor<T> {
        if let Some(out) = self.rows_along_last(
            "softmax",
            axis,
            #[inline(always)]
            |x, o| softmax_row(x, o),
        ) {
            return out;
        }
        self.along_axis("softmax", axis, |lane| {
            let m = lane_max(lane);
            let inv = T::ONE / exp_shifted(lane, m);
            for v in lane.iter_mut() {
                *v *= inv;
            }
        })
    }

    /// Log-softmax along `axis`: `(x - max) - ln(sum(exp(x - max)))`, stable for large inputs and
    /// exact to a few ulps however large they are.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f64>::from_vec(vec![-1000., 0.], &[2]);
    /// assert_eq!(t.log_softmax(0).to_vec(), vec![-1000., 0.]);
    /// ```
    #[track_caller]
    pub fn log_softmax(&self, axis: usize) -> Tensor<T> {
        if let Some(out) = self.rows_along_last(
            "log_softmax",
            axis,
            #[inline(always)]
            |x, o| log_softmax_row(x, o),
        ) {
            return out;
        }
        self.along_axis("log_softmax", axis, |lane| {
            let x = lane.to_vec();
            log_softmax_row(&x, lane);
        })
    }

    /// `row(x, out)` over each contiguous lane when `axis` is the last non-trivial one (every
    /// axis after it has size 1), compiled for the CPU's widest vectors and split by rows between
    /// threads for large tensors; `None` for other axes.
    #[track_caller]
    fn rows_along_last(
        &self,
        op: &str,
        axis: usize,
        row: impl Fn(&[T], &mut [T]) + Sync,
    ) -> Option<Tensor<T>> {
        shape::check_axis(op, axis, self.shape());
        let (_, n, inner) = shape::split_at_axis(self.shape(), axis);
        if inner != 1 || n == 0 {
            return None;
        }
        let x = self.as_slice();
        Some(Tensor::build(Shape::from_slice(&self.shape), |out| {
            parallel::for_each_slab(out, n, Work::Heavy, |first, piece| {
                let x = &x[first * n..][..piece.len()];
                simd::run(
                    #[inline(always)]
                    || {
                        for (xr, or) in x.chunks_exact(n).zip(piece.chunks_exact_mut(n)) {
                            row(xr, or);
                        }
                    },
                )
            })
        }))
    }

    /// The gradient of `softmax` along `axis` at output `self` for gradient `g`:
    /// `g·y − y·Σ(g·y)`, in one pass per lane when `axis` is the last non-trivial one, with the
    /// operations (and the sum's order) of the recorded rule, so results agree bit for bit.
    #[track_caller]
    pub(crate) fn softmax_backward(&self, g: &Tensor<T>, axis: usize) -> Tensor<T> {
        let (_, n, inner) = shape::split_at_axis(self.shape(), axis);
        if inner != 1 || n == 0 || !shape::same(self.shape(), g.shape()) {
            let gy = g.mul(self);
            return Tensor::sub(&gy, &self.mul(&gy.sum_axis(axis, true)));
        }
        let (y, g) = (self.as_slice(), g.as_slice());
        Tensor::build(Shape::from_slice(&self.shape), |out| {
            parallel::for_each_slab(out, n, Work::Light, |first, piece| {
                let (y, g) = (&y[first * n..][..piece.len()], &g[first * n..][..piece.len()]);
                simd::run(
                    #[inline(always)]
                    || {
                        for ((yr, gr), or) in y
                            .chunks_exact(n)
                            .zip(g.chunks_exact(n))
                            .zip(piece.chunks_exact_mut(n))
                        {
                            for ((o, &a), &b) in or.iter_mut().zip(gr).zip(yr) {
                                *o = a * b;
                            }
                            let s = row_sum(or);
                            for (o, &b) in or.iter_mut().zip(yr) {
                                *o -= b * s;
                            }
                        }
                    },
                )
            })
        })
    }

    /// Applies `f` to each lane along `axis` (gathered into a contiguous buffer).
    #[track_caller]
    fn along_axis(&self, op: &str, axis: usize, f: impl Fn(&mut [T])) -> Tensor<T> {
        shape::check_axis(op, axis, self.shape());
        let (outer, n, inner) = shape::split_at_axis(self.shape(), axis);
        Tensor::build(Shape::from_slice(&self.shape), |out| {
            out.copy_from_slice(self.as_slice());
            if n == 0 {
                return;
            }
            if inner == 1 {
                out.chunks_mut(n).for_each(f);
                return;
            }
            let mut lane = vec![T::ZERO; n];
            for o in 0..outer {
                for i in 0..inner {
                    for j in 0..n {
                        lane[j] = out[(o * n + j) * inner + i];
                    }
                    f(&mut lane);
                    for j in 0..n {
                        out[(o * n + j) * inner + i] = lane[j];
                    }
                }
            }
        })
    }

    /// Matrix product over the last two axes, broadcasting any leading (batch) axes:
    /// `[.., m, k] @ [.., k, n] -> [.., m, n]`.
    ///
    /// # Panics
    /// If either operand has rank below 2, the inner dimensions differ, or the batch axes do
    /// not broadcast.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    /// let i = Tensor::<f32>::from_vec(vec![1., 0., 0., 1.], &[2, 2]);
    /// assert_eq!(a.matmul(&i), a);
    /// ```
    #[track_caller]
    pub fn matmul(&self, other: &Tensor<T>) -> Tensor<T> {
        matmul_transposed("matmul", self, false, other, false)
    }
}

/// The sum of `values`: halves summed recursively down to blocks, each block summed in eight
/// interleaved partial sums (which the compiler maps onto vector registers).
///
/// Every partial sum starts at +0, so an empty sum is +0 (`Iterator::sum` for floats starts at
/// -0, which would print as `-0`).
///
/// Long inputs are split between threads at the top of the recursion, where the halves fall
/// anyway, so the result is the same bit for bit whatever the thread count.
fn pairwise_sum<T: Float>(values: &[T]) -> T {
    pairwise_sum_on(values, parallel::reduction_threads(values.len()))
}

/// [`pairwise_sum`] with the halves on up to `threads` threads.
fn pairwise_sum_on<T: Float>(values: &[T], threads: usize) -> T {
    const BLOCK: usize = 128;
    if values.len() > BLOCK {
        // Split on a multiple of the block so that every block but the last is full.
        let half = (values.len() / 2).next_multiple_of(BLOCK);
        let (left, right) = values.split_at(half.min(values.len()));
        if threads > 1 {
            let (left, right) = rayon::join(
                || pairwise_sum_on(left, threads.div_ceil(2)),
                || pairwise_sum_on(right, threads / 2),
            );
            return left + right;
        }
        return pairwise_sum_on(left, 1) + pairwise_sum_on(right, 1);
    }
    block_sum(values)
}

/// The sum of a block of values in eight interleaved partial sums (which the compiler maps onto
/// vector registers), the leaves of [`pairwise_sum`].
#[inline(always)]
fn block_sum<T: Float>(values: &[T]) -> T {
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    let mut lanes = [T::ZERO; 8];
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut total = ((a + b) + (c + d)) + ((e + f) + (g + h));
    for &value in rest {
        total += value;
    }
    total
}

/// The sum of one row, as [`pairwise_sum`] on one thread adds it (inlined for short rows, so
/// that it is compiled with its caller's vector width).
#[inline(always)]
fn row_sum<T: Float>(values: &[T]) -> T {
    if values.len() > 128 {
        pairwise_sum_on(values, 1)
    } else {
        block_sum(values)
    }
}

/// The largest value of a non-empty lane, in sixteen interleaved maxima (which vectorise). A lane
/// holding NaN may give NaN or the largest other value; either way the softmax of the lane is NaN.
#[inline(always)]
fn lane_max<T: Float>(x: &[T]) -> T {
    let mut acc = [x[0]; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut m = x[0];
    for &v in acc.iter().chain(rest) {
        m = if v > m { v } else { m };
    }
    m
}

/// Replaces each value of `lane` by `e^(v − m)` and returns their sum ([`row_sum`]'s order).
#[inline(always)]
fn exp_shifted<T: Float>(lane: &mut [T], m: T) -> T {
    for v in lane.iter_mut() {
        *v = (*v - m).exp();
    }
    row_sum(lane)
}

/// The softmax of row `x` into `out` (of the same length).
#[inline(always)]
fn softmax_row<T: Float>(x: &[T], out: &mut [T]) {
    let m = lane_max(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m).exp();
    }
    // One division per row and a product per element (as PyTorch's kernel does): a vector
    // division per element was a third of the softmax.
    let inv = T::ONE / row_sum(out);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// The log-softmax of row `x` into `out` (of the same length).
#[inline(always)]
fn log_softmax_row<T: Float>(x: &[T], out: &mut [T]) {
    let m = lane_max(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m).exp();
    }
    // `(x - m) - ln Σ e^(x - m)`, as PyTorch computes it: `x - (m + ln Σ)` would round
    // `m + ln Σ` to the precision of `m` (3e-5 off at logits of 1000 in f32, and `ln 2` lost
    // entirely at 1e30).
    let log_total = row_sum(out).ln();
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v - m) - log_total;
    }
}

/// Matrix product where `ta`/`tb` read the operand's last two axes transposed (through strides,
/// without copying): `op(a) @ op(b)`. `op` names the operation in error messages.
#[track_caller]
pub(crate) fn matmul_transposed<T: Float>(
    op: &str,
    a: &Tensor<T>,
    ta: bool,
    b: &Tensor<T>,
    tb: bool,
) -> Tensor<T> {
    assert!(
        a.rank() >= 2 && b.rank() >= 2,
        "tapegrad: {op}: both operands need rank 2 or more (matrices or batches of matrices), \
         got shapes {:?} and {:?}",
        a.shape(),
        b.shape()
    );
    let (ra, rb) = (a.rank(), b.rank());
    let (a_rows, a_cols) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (b_rows, b_cols) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    let (m, k) = if ta { (a_cols, a_rows) } else { (a_rows, a_cols) };
    let (k2, n) = if tb { (b_cols, b_rows) } else { (b_rows, b_cols) };
    assert!(
        k == k2,
        "tapegrad: {op}: inner dimensions differ: shapes {:?}{} and {:?}{} give {m}x{k} @ {k2}x{n}",
        a.shape(),
        if ta { "ᵀ" } else { "" },
        b.shape(),
        if tb { "ᵀ" } else { "" },
    );
    let batch = shape::broadcast_shape(op, &a.shape()[..ra - 2], &b.shape()[..rb - 2]);
    let batch_count = shape::numel(&batch);
    let a_batch = shape::broadcast_strides(&a.shape()[..ra - 2], &batch);
    let b_batch = shape::broadcast_strides(&b.shape()[..rb - 2], &batch);
    let a_strides = if ta {
        (1, a_cols as isize)
    } else {
        (a_cols as isize, 1)
    };
    let b_strides = if tb {
        (1, b_cols as isize)
    } else {
        (b_cols as isize, 1)
    };
    let (a_mat, b_mat) = (a_rows * a_cols, b_rows * b_cols);
    let mut out_shape = batch.clone();
    out_shape.push(m);
    out_shape.push(n);
    // Operands of no elements can still promise a huge product ([2^40, 0] @ [0, 2^40]).
    shape::checked_numel::<T>(op, &out_shape);
    let fill = |out: &mut [std::mem::MaybeUninit<T>]| {
        let mut index: Shape = smallvec::smallvec![0; batch.len()];
        for bi in 0..batch_count {
            // Offsets of this batch element in units of whole matrices.
            let (mut oa, mut ob) = (0, 0);
            for d in 0..batch.len() {
                oa += index[d] * a_batch[d];
                ob += index[d] * b_batch[d];
            }
            if m > 0 && n > 0 {
                T::gemm(
                    m,
                    k,
                    n,
                    &a.as_slice()[oa * a_mat..(oa + 1) * a_mat],
                    a_strides,
                    &b.as_slice()[ob * b_mat..(ob + 1) * b_mat],
                    b_strides,
                    &mut out[bi * m * n..(bi + 1) * m * n],
                    (n as isize, 1),
                );
            }
            for d in (0..batch.len()).rev() {
                index[d] += 1;
                if index[d] < batch[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    };
    // SAFETY: `fill` visits every batch element once, and `T::gemm` writes all m·n elements of
    // its slice (nothing to write when m or n is 0); the slices tile the output exactly.
    unsafe { Tensor::build_overwritten(out_shape, fill) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_matches_the_two_branch_form_and_saturates_without_overflow() {
        // The form sigmoid had before, with the same `exp` (`Float::exp`, not libm's).
        let two_branch = |x: f32| {
            if x >= 0.0 {
                1.0 / (1.0 + Float::exp(-x))
            } else {
                Float::exp(x) / (1.0 + Float::exp(x))
            }
        };
        for i in -2000..=2000 {
            let x = i as f32 * 0.05;
            assert_eq!(sigmoid(x).to_bits(), two_branch(x).to_bits(), "sigmoid({x})");
        }
        assert_eq!(sigmoid(1000.0f32), 1.0);
        assert_eq!(sigmoid(-1000.0f32), 0.0);
        assert_eq!(sigmoid(f64::INFINITY), 1.0);
        assert_eq!(sigmoid(f64::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(-0.0f64), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
        assert!((sigmoid(-80.0f64) - (-80.0f64).exp()).abs() < 1e-40);
    }

    fn naive_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn sum_agrees_with_an_exact_sum_at_every_length_around_the_block_edges() {
        for len in (0..300).chain([1023, 1024, 1025, 4096 + 7]) {
            // Integers small enough that every partial sum is exact in f32, in any order.
            let values: Vec<f32> = (0..len).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let exact: i64 = (0..len).map(|i| ((i * 37) % 11) as i64 - 5).sum();
            let t = Tensor::from_vec(values, &[len]);
            assert_eq!(t.sum().item(), exact as f32, "len {len}");
            if len > 0 {
                assert_eq!(t.mean().item(), exact as f32 / len as f32, "len {len}");
            }
        }
        assert!(Tensor::<f64>::zeros(&[0]).sum().item().is_sign_positive());
    }

    #[test]
    fn sum_of_a_million_f32_tenths_keeps_six_digits() {
        // A left-to-right f32 sum drifts to 105891.84 here (1 % off); pairwise stays
        // within a few units in the last place of the true 104857.6.
        let n = 1 << 20;
        let got = Tensor::<f32>::full(&[n], 0.1).sum().item() as f64;
        let want = n as f64 * 0.1f32 as f64;
        assert!((got - want).abs() / want < 1e-6, "got {got}, want {want}");
    }

    #[test]
    fn matmul_matches_naive_loops_over_sizes_and_transposes() {
        for &(m, k, n) in &[(1, 1, 1), (2, 3, 4), (7, 5, 3), (17, 33, 9), (64, 1, 65)] {
            let a = Tensor::<f64>::from_fn(&[m, k], |i| (i as f64 * 0.37).sin());
            let b = Tensor::<f64>::from_fn(&[k, n], |i| (i as f64 * 0.71).cos());
            let want = naive_matmul(a.as_slice(), b.as_slice(), m, k, n);
            let check = |got: Tensor<f64>| {
                assert_eq!(got.shape(), &[m, n]);
                for (g, w) in got.as_slice().iter().zip(&want) {
                    assert!((g - w).abs() < 1e-12, "{g} vs {w}");
                }
            };
            check(a.matmul(&b));
            check(matmul_transposed("matmul", &a.transpose(0, 1), true, &b, false));
            check(matmul_transposed("matmul", &a, false, &b.transpose(0, 1), true));
            check(matmul_transposed(
                "matmul",
                &a.transpose(0, 1),
                true,
                &b.transpose(0, 1),
                true,
            ));
        }
    }

    #[test]
    fn batched_matmul_broadcasts_batch_axes() {
        let a = Tensor::<f64>::from_fn(&[3, 2, 4], |i| i as f64);
        let b = Tensor::<f64>::from_fn(&[4, 5], |i| (i as f64).sqrt());
        let c = a.matmul(&b);
        assert_eq!(c.shape(), &[3, 2, 5]);
        for batch in 0..3 {
            let ab = a.narrow(0, batch, 1).reshape(&[2, 4]).matmul(&b);
            assert_eq!(c.narrow(0, batch, 1).reshape(&[2, 5]), ab);
        }
    }

    #[test]
    fn broadcasting_arithmetic_matches_explicit_broadcast() {
        let a = Tensor::<f64>::from_fn(&[2, 1, 3], |i| i as f64);
        let b = Tensor::<f64>::from_fn(&[4, 1], |i| 10.0 * i as f64);
        let sum = &a + &b;
        assert_eq!(sum.shape(), &[2, 4, 3]);
        let explicit = &a.broadcast_to(&[2, 4, 3]) + &b.broadcast_to(&[2, 4, 3]);
        assert_eq!(sum, explicit);
        assert_eq!(sum.sum_to(&[4, 1]).shape(), &[4, 1]);
    }

    #[test]
    fn narrow_and_unnarrow_are_adjoint() {
        let t = Tensor::<f64>::from_fn(&[2, 5, 3], |i| i as f64);
        let part = t.narrow(1, 1, 3);
        let back = part.unnarrow(&[2, 5, 3], 1, 1);
        assert_eq!(back.narrow(1, 1, 3), part);
        assert_eq!(back.sum().item(), part.sum().item());
    }
}
