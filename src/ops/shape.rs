//! Layout ops: reshape, transpose, broadcast_to, narrow (and its adjoint, unnarrow). Their
//! backward moves the gradient back to the input's layout; no arithmetic is involved.

use super::{Args, Extra, Fwd, Op, Operand, Primitive, Vjp};
use crate::tensor::{Shape, shape};
use crate::{Element, Float, Tensor, Var};

/// Reshape. The gradient is reshaped back.
pub(crate) struct Reshape;

impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn rule(&self) -> &'static str {
        "same elements, new shape: grad_x = grad_out reshaped to x's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.reshape(&cx.x().shape())), None]
    }
}

/// Swap of two axes. The gradient is swapped back.
pub(crate) struct Transpose;

impl<T: Float> Op<T> for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }
    fn rule(&self) -> &'static str {
        "a permutation: grad_x = grad_out with the same two axes swapped back"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Transpose(a0, a1) = cx.args else {
            unreachable!("transpose node without its axes")
        };
        let (a0, a1) = (a0 as usize, a1 as usize);
        [cx.need(0, || cx.grad_out.transpose(a0, a1)), None]
    }
}

/// Broadcast to a larger shape. The gradient is summed over the broadcast axes.
pub(crate) struct BroadcastTo;

impl<T: Float> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn rule(&self) -> &'static str {
        "each input element is copied k times: grad_x = grad_out summed over the broadcast axes"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.clone().sum_to_like(cx.x())), None]
    }
}

/// A slice along one axis. The gradient is placed back into zeros of the input's shape.
pub(crate) struct Narrow;

impl<T: Float> Op<T> for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn rule(&self) -> &'static str {
        "selects a slice: grad_x = grad_out inside the slice, 0 elsewhere"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Narrow { axis, start, .. } = cx.args else {
            unreachable!("narrow node without its range")
        };
        let axis = axis as usize;
        let start = start as usize;
        [
            cx.need(0, || cx.grad_out.unnarrow(&cx.x().shape(), axis, start)),
            None,
        ]
    }
}

/// Zero-padding around a slice: the adjoint of [`Narrow`]. The gradient is narrowed back.
pub(crate) struct Unnarrow;

impl<T: Float> Op<T> for Unnarrow {
    fn name(&self) -> &'static str {
        "unnarrow"
    }
    fn rule(&self) -> &'static str {
        "pads with zeros: grad_x = the slice of grad_out where x was placed"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Narrow { axis, start, len } = cx.args else {
            unreachable!("unnarrow node without its range")
        };
        let axis = axis as usize;
        let start = start as usize;
        let len = len as usize;
        [cx.need(0, || cx.grad_out.narrow(axis, start, len)), None]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The same elements under another shape with as many elements.
    ///
    /// # Panics
    /// If the element counts differ.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::zeros(&[2, 3]));
    /// assert_eq!(x.reshape(&[6]).shape(), vec![6]);
    /// ```
    #[track_caller]
    pub fn reshape(self, shape: &[usize]) -> Var<'t, T> {
        let value = self.value_ref().reshape(shape);
        self.record_unary(&Reshape, Args::None, value)
    }

    /// Swaps axes `a0` and `a1`.
    ///
    /// # Panics
    /// If an axis is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::zeros(&[2, 3, 4]));
    /// assert_eq!(x.transpose(0, 2).shape(), vec![4, 3, 2]);
    /// ```
    #[track_caller]
    pub fn transpose(self, a0: usize, a1: usize) -> Var<'t, T> {
        let value = self.value_ref().transpose(a0, a1);
        self.record_unary(&Transpose, Args::transpose(a0, a1), value)
    }

    /// Repeats this value along broadcast axes to `shape` (NumPy rules).
    ///
    /// # Panics
    /// If this shape does not broadcast to `shape`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2.], &[2, 1]));
    /// let y = x.broadcast_to(&[2, 3]);
    /// assert_eq!(y.backward_with_seed(Tensor::ones(&[2, 3]))[x].to_vec(), vec![3., 3.]);
    /// ```
    #[track_caller]
    pub fn broadcast_to(self, shape: &[usize]) -> Var<'t, T> {
        if self.shape() == shape {
            return self;
        }
        let value = self.value_ref().broadcast_to(shape);
        self.record_unary(&BroadcastTo, Args::None, value)
    }

    /// The slice `start..start + len` along `axis`.
    ///
    /// # Panics
    /// If `axis` is out of range or the slice runs past the end.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[4]));
    /// let y = x.narrow(0, 1, 2);
    /// assert_eq!(y.value().to_vec(), vec![2., 3.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0., 1., 1., 0.]);
    /// ```
    #[track_caller]
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Var<'t, T> {
        let value = self.value_ref().narrow(axis, start, len);
        self.record_unary(&Narrow, Args::narrow(axis, start, len), value)
    }

    /// Places this value at `start` along `axis` inside zeros of shape `full`.
    #[track_caller]
    pub(crate) fn unnarrow(self, full: &[usize], axis: usize, start: usize) -> Var<'t, T> {
        let len = self.shape()[axis];
        let value = self.value_ref().unnarrow(full, axis, start);
        self.record_unary(&Unnarrow, Args::narrow(axis, start, len), value)
    }
}

/// A permutation of the axes (`Extra::ints` = the new order). The gradient is permuted back by
/// the inverse permutation.
pub(crate) struct Permute;

impl<T: Float> Op<T> for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn rule(&self) -> &'static str {
        "reorders the axes: grad_x = grad_out with the axes put back in x's order"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axes = &cx.extra().ints;
        let mut inverse = vec![0; axes.len()];
        for (i, &a) in axes.iter().enumerate() {
            inverse[a] = i;
        }
        [cx.need(0, || permute(cx.grad_out, &inverse)), None]
    }
}

impl<T: Float> Primitive<T> for Permute {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        cx.x().permute(&cx.extra().ints)
    }
}

/// `x` with its axes in the order `axes`, for any operand (rules call this).
pub(crate) fn permute<T: Float, G: Operand<T>>(x: &G, axes: &[usize]) -> G {
    G::apply(&Permute, Args::None, Some(Extra::ints(axes)), &[x])
}

/// Checks that `axes` is a permutation of `0..rank`.
#[track_caller]
pub(crate) fn check_permutation(op: &str, axes: &[usize], shape: &[usize]) {
    let rank = shape.len();
    assert!(
        axes.len() == rank,
        "tapegrad: {op}: {} axes {axes:?} for shape {shape:?} of rank {rank}; give each axis once",
        axes.len()
    );
    let mut seen = vec![false; rank];
    for &a in axes {
        assert!(
            a < rank,
            "tapegrad: {op}: axis {a} in {axes:?} is out of range for shape {shape:?} (rank {rank})"
        );
        assert!(!seen[a], "tapegrad: {op}: axis {a} appears twice in {axes:?}");
        seen[a] = true;
    }
}

impl<T: Element> Tensor<T> {
    /// The axes reordered (`torch.permute`): axis `i` of the result is axis `axes[i]` of this
    /// tensor (copying into the new row-major order).
    ///
    /// # Panics
    /// If `axes` is not a permutation of `0..rank`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::zeros(&[2, 3, 4]);
    /// assert_eq!(t.permute(&[2, 0, 1]).shape(), &[4, 2, 3]);
    /// ```
    #[track_caller]
    pub fn permute(&self, axes: &[usize]) -> Tensor<T> {
        check_permutation("permute", axes, self.shape());
        if axes.iter().enumerate().all(|(i, &a)| i == a) {
            return self.clone();
        }
        let strides = shape::strides(self.shape());
        let out_shape: Shape = axes.iter().map(|&a| self.shape()[a]).collect();
        let out_strides: Shape = axes.iter().map(|&a| strides[a]).collect();
        crate::tensor::gather_strided(self.as_slice(), 0, &out_strides, out_shape)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The axes reordered (`torch.permute`): axis `i` of the result is axis `axes[i]` of this
    /// var. The gradient is permuted back.
    ///
    /// # Panics
    /// If `axes` is not a permutation of `0..rank`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_fn(&[2, 3, 4], |i| i as f64));
    /// let y = x.permute(&[2, 0, 1]);
    /// assert_eq!(y.shape(), vec![4, 2, 3]);
    /// assert_eq!(y.value().get(&[3, 1, 2]), x.value().get(&[1, 2, 3]));
    /// let grads = (y * y).sum().backward();
    /// assert_eq!(grads[x], x.value() * 2.0);
    /// ```
    #[track_caller]
    pub fn permute(self, axes: &[usize]) -> Var<'t, T> {
        check_permutation("permute", axes, &self.shape());
        Var::record_op(&Permute, Args::None, Some(Extra::ints(axes)), &[self])
    }
}
