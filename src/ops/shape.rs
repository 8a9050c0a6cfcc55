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
#[track_caller]
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

/// Checks an axis for an op that may also address the position one past the last axis
/// (`unsqueeze`).
#[track_caller]
fn check_insert_axis(op: &str, axis: usize, shape: &[usize]) {
    assert!(
        axis <= shape.len(),
        "tapegrad: {op}: axis {axis} is out of range for shape {shape:?} (rank {}; a new axis \
         goes at 0..={})",
        shape.len(),
        shape.len()
    );
}

impl<T: Element> Tensor<T> {
    /// Removes axis `axis`, which must have length 1 (`torch.squeeze(x, axis)`).
    ///
    /// # Panics
    /// If `axis` is out of range or its length is not 1 (PyTorch leaves the tensor unchanged
    /// then; tapegrad says so, since a squeeze that silently did nothing is a shape bug later).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::zeros(&[2, 1, 3]);
    /// assert_eq!(t.squeeze(1).shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn squeeze(&self, axis: usize) -> Tensor<T> {
        self.reshape(&squeezed_shape(axis, self.shape()))
    }

    /// Inserts an axis of length 1 at `axis` (`torch.unsqueeze`); `axis` may equal the rank.
    ///
    /// # Panics
    /// If `axis` is greater than the rank.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::zeros(&[2, 3]);
    /// assert_eq!(t.unsqueeze(0).shape(), &[1, 2, 3]);
    /// assert_eq!(t.unsqueeze(2).shape(), &[2, 3, 1]);
    /// ```
    #[track_caller]
    pub fn unsqueeze(&self, axis: usize) -> Tensor<T> {
        self.reshape(&unsqueezed_shape(axis, self.shape()))
    }

    /// The elements in reverse order along each axis of `axes` (`torch.flip`).
    ///
    /// # Panics
    /// If an axis is out of range or given twice.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.flip(&[1]).to_vec(), vec![3., 2., 1., 6., 5., 4.]);
    /// assert_eq!(t.flip(&[0, 1]).to_vec(), vec![6., 5., 4., 3., 2., 1.]);
    /// ```
    #[track_caller]
    pub fn flip(&self, axes: &[usize]) -> Tensor<T> {
        let flipped = flip_mask("flip", axes, self.shape());
        flip_kernel(self, &flipped)
    }
}

#[track_caller]
fn squeezed_shape(axis: usize, shape: &[usize]) -> Shape {
    shape::check_axis("squeeze", axis, shape);
    assert!(
        shape[axis] == 1,
        "tapegrad: squeeze: axis {axis} of shape {shape:?} has length {}, not 1",
        shape[axis]
    );
    let mut out = Shape::from_slice(shape);
    out.remove(axis);
    out
}

#[track_caller]
fn unsqueezed_shape(axis: usize, shape: &[usize]) -> Shape {
    check_insert_axis("unsqueeze", axis, shape);
    let mut out = Shape::from_slice(shape);
    out.insert(axis, 1);
    out
}

/// Which axes `axes` names, as one flag per axis; panics naming `op` on a bad or repeated axis.
#[track_caller]
fn flip_mask(op: &str, axes: &[usize], shape: &[usize]) -> Vec<bool> {
    let mut flipped = vec![false; shape.len()];
    for &a in axes {
        assert!(
            a < shape.len(),
            "tapegrad: {op}: axis {a} in {axes:?} is out of range for shape {shape:?} (rank {})",
            shape.len()
        );
        assert!(!flipped[a], "tapegrad: {op}: axis {a} appears twice in {axes:?}");
        flipped[a] = true;
    }
    flipped
}

/// Reverses `x` along the axes flagged in `flipped`, one contiguous row at a time.
fn flip_kernel<T: Element>(x: &Tensor<T>, flipped: &[bool]) -> Tensor<T> {
    let dims = x.shape();
    let rank = dims.len();
    if rank == 0 || x.numel() == 0 || !flipped.iter().any(|&f| f) {
        return x.clone();
    }
    let src = x.as_slice();
    let strides = shape::strides(dims);
    let inner = dims[rank - 1];
    let reverse_rows = flipped[rank - 1];
    // The source offset of output row `index` (all axes but the last): flipped axes count down.
    let row_start = |index: &[usize]| -> usize {
        index
            .iter()
            .enumerate()
            .map(|(d, &i)| if flipped[d] { dims[d] - 1 - i } else { i } * strides[d])
            .sum()
    };
    Tensor::build(Shape::from_slice(dims), |out| {
        let mut index: Shape = smallvec::smallvec![0; rank - 1];
        for row in out.chunks_exact_mut(inner) {
            let start = row_start(&index);
            let from = &src[start..start + inner];
            if reverse_rows {
                for (o, &v) in row.iter_mut().zip(from.iter().rev()) {
                    *o = v;
                }
            } else {
                row.copy_from_slice(from);
            }
            for d in (0..rank - 1).rev() {
                index[d] += 1;
                if index[d] < dims[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    })
}

/// Reversal along some axes (`Extra::ints` = the axes). Its own adjoint: the gradient is
/// flipped back.
pub(crate) struct Flip;

impl<T: Float> Op<T> for Flip {
    fn name(&self) -> &'static str {
        "flip"
    }
    fn rule(&self) -> &'static str {
        "reverses axes: grad_x = grad_out reversed along the same axes"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let axes = &cx.extra().ints;
        [
            cx.need(0, || {
                G::apply(&Flip, Args::None, Some(Extra::ints(axes)), &[cx.grad_out])
            }),
            None,
        ]
    }
}

impl<T: Float> Primitive<T> for Flip {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let x = cx.x();
        let flipped = flip_mask("flip", &cx.extra().ints, x.shape());
        flip_kernel(x, &flipped)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Removes axis `axis`, which must have length 1 (`torch.squeeze(x, axis)`).
    ///
    /// # Panics
    /// If `axis` is out of range or its length is not 1 (where PyTorch would leave the value
    /// unchanged).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2.], &[2, 1]));
    /// let y = x.squeeze(1);
    /// assert_eq!(y.shape(), vec![2]);
    /// assert_eq!((y * y).sum().backward()[x].to_vec(), vec![2., 4.]);
    /// ```
    #[track_caller]
    pub fn squeeze(self, axis: usize) -> Var<'t, T> {
        let shape = squeezed_shape(axis, &self.shape());
        self.reshape(&shape)
    }

    /// Inserts an axis of length 1 at `axis` (`torch.unsqueeze`); `axis` may equal the rank.
    ///
    /// # Panics
    /// If `axis` is greater than the rank.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    /// assert_eq!(x.unsqueeze(0).shape(), vec![1, 2]);
    /// assert_eq!(x.unsqueeze(1).shape(), vec![2, 1]);
    /// ```
    #[track_caller]
    pub fn unsqueeze(self, axis: usize) -> Var<'t, T> {
        let shape = unsqueezed_shape(axis, &self.shape());
        self.reshape(&shape)
    }

    /// Merges axes `start..=end` (both included) into one (`torch.flatten(x, start, end)`); a
    /// rank-0 value becomes `[1]`, as in PyTorch.
    ///
    /// # Panics
    /// If `start > end` or `end` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(Tensor::zeros(&[2, 3, 4, 5]));
    /// assert_eq!(x.flatten(1, 2).shape(), vec![2, 12, 5]);
    /// assert_eq!(x.flatten(0, 3).shape(), vec![120]);
    /// ```
    #[track_caller]
    pub fn flatten(self, start: usize, end: usize) -> Var<'t, T> {
        let shape = self.shape();
        if shape.is_empty() && start == 0 && end == 0 {
            return self.reshape(&[1]);
        }
        assert!(
            start <= end && end < shape.len(),
            "tapegrad: flatten: axes {start}..={end} are not a range of the axes of shape \
             {shape:?} (rank {}; need start <= end < rank)",
            shape.len()
        );
        let mut out: Vec<usize> = shape[..start].to_vec();
        out.push(shape::checked_numel::<T>("flatten", &shape[start..=end]));
        out.extend_from_slice(&shape[end + 1..]);
        self.reshape(&out)
    }

    /// The elements in reverse order along each axis of `axes` (`torch.flip`). The gradient is
    /// flipped back.
    ///
    /// # Panics
    /// If an axis is out of range or given twice.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3.], &[3]));
    /// let y = x.flip(&[0]);
    /// assert_eq!(y.value().to_vec(), vec![3., 2., 1.]);
    /// let w = tape.constant(Tensor::from_vec(vec![1., 10., 100.], &[3]));
    /// assert_eq!((y * w).sum().backward()[x].to_vec(), vec![100., 10., 1.]);
    /// ```
    #[track_caller]
    pub fn flip(self, axes: &[usize]) -> Var<'t, T> {
        let flipped = flip_mask("flip", axes, &self.shape());
        if !flipped.iter().any(|&f| f) {
            return self;
        }
        Var::record_op(&Flip, Args::None, Some(Extra::ints(axes)), &[self])
    }

    /// Tiles the value `reps[i]` times along axis `i` (`torch.Tensor.repeat`); when `reps` is
    /// longer than the rank, the value is first given leading axes of length 1. The gradient of
    /// each element is the sum over its copies.
    ///
    /// # Panics
    /// If `reps` has fewer entries than the rank.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    /// let y = x.repeat(&[2, 2]);
    /// assert_eq!(y.shape(), vec![2, 4]);
    /// assert_eq!(y.value().to_vec(), vec![1., 2., 1., 2., 1., 2., 1., 2.]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![4., 4.]);
    /// ```
    #[track_caller]
    pub fn repeat(self, reps: &[usize]) -> Var<'t, T> {
        let shape = self.shape();
        assert!(
            reps.len() >= shape.len(),
            "tapegrad: repeat: {} repetitions {reps:?} for shape {shape:?} of rank {}; give one \
             per axis (more add leading axes)",
            reps.len(),
            shape.len()
        );
        let lead = reps.len() - shape.len();
        let full: Vec<usize> = std::iter::repeat_n(1, lead)
            .chain(shape.iter().copied())
            .collect();
        if reps.iter().all(|&r| r == 1) {
            return if lead == 0 { self } else { self.reshape(&full) };
        }
        // Interleave a length-1 axis before every axis, broadcast those to the repetitions and
        // merge each pair: one strided copy forward, one sum backward, and no rule of its own.
        let spread: Vec<usize> = full.iter().flat_map(|&d| [1, d]).collect();
        let tiled: Vec<usize> = reps.iter().zip(&full).flat_map(|(&r, &d)| [r, d]).collect();
        let out: Vec<usize> = reps
            .iter()
            .zip(&full)
            .map(|(&r, &d)| r.saturating_mul(d))
            .collect();
        if shape::try_numel::<T>(&tiled).is_none() {
            panic!(
                "tapegrad: repeat: {reps:?} repetitions of shape {shape:?} make more elements than \
                 memory can address (at most {})",
                shape::max_elements::<T>()
            );
        }
        self.reshape(&spread).broadcast_to(&tiled).reshape(&out)
    }
}
