//! Reductions: sum, mean, sum_axis, mean_axis, max_axis, and sum_to (the adjoint of
//! broadcasting). The backward of a reduction broadcasts the gradient back over the reduced axes.

use super::{Args, Op, Operand, Vjp};
use crate::tensor::shape;
use crate::{Float, Var};

/// Sum of all elements. d(Σx)/dx_i = 1.
pub(crate) struct Sum;

impl<T: Float> Op<T> for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn rule(&self) -> &'static str {
        "d(sum x)/dx_i = 1: grad_x = grad_out broadcast to x's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.broadcast_to(&cx.x().shape())), None]
    }
}

/// Sum over one axis. Each input element receives the gradient of its sum.
pub(crate) struct SumAxis;

impl<T: Float> Op<T> for SumAxis {
    fn name(&self) -> &'static str {
        "sum_axis"
    }
    fn rule(&self) -> &'static str {
        "d(sum_j x_j)/dx_j = 1: grad_x = grad_out repeated along the summed axis"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("sum_axis node without its axis")
        };
        let axis = axis as usize;
        let xs = cx.x().shape();
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&xs, axis, true);
                cx.grad_out.reshape(&kept).broadcast_to(&xs)
            }),
            None,
        ]
    }
}

/// Maximum over one axis. The gradient goes to the (first) maximal element only, as in PyTorch.
pub(crate) struct MaxAxis;

impl<T: Float> Op<T> for MaxAxis {
    fn name(&self) -> &'static str {
        "max_axis"
    }
    fn rule(&self) -> &'static str {
        "d(max_j x_j)/dx_j = 1 at the argmax, else 0: grad_x = grad_out at the argmax"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("max_axis node without its axis")
        };
        let axis = axis as usize;
        let xs = cx.x().shape();
        [
            cx.need(0, || {
                let kept = shape::reduced_shape(&xs, axis, true);
                let mask = cx.x().with_value(|x| x.argmax_mask(axis));
                cx.grad_out.reshape(&kept).broadcast_to(&xs).mul_constant(mask)
            }),
            None,
        ]
    }
}

/// Sum of a broadcast tensor back to a smaller shape; its adjoint is broadcasting.
pub(crate) struct SumTo;

impl<T: Float> Op<T> for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn rule(&self) -> &'static str {
        "adjoint of broadcasting: grad_x = grad_out broadcast back to x's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.broadcast_to(&cx.x().shape())), None]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The sum of all elements, as a scalar (rank 0).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0, 3.0]);
    /// let s = x.sum();
    /// assert_eq!(s.item(), 6.0);
    /// assert_eq!(s.backward()[x].to_vec(), vec![1.0, 1.0, 1.0]);
    /// ```
    pub fn sum(self) -> Var<'t, T> {
        let value = self.value_ref().sum();
        self.record_unary(&Sum, Args::None, value)
    }

    /// The mean of all elements, as a scalar: `sum() / numel`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0, 3.0, 6.0]);
    /// assert_eq!(x.mean().item(), 3.0);
    /// assert_eq!(x.mean().backward()[x].to_vec(), vec![0.25; 4]);
    /// ```
    pub fn mean(self) -> Var<'t, T> {
        let n = shape::numel(&self.shape());
        self.sum() * (T::ONE / T::from_usize(n))
    }

    /// Sums over `axis`, keeping it with size 1 when `keepdim`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// assert_eq!(x.sum_axis(0, false).value().to_vec(), vec![5., 7., 9.]);
    /// assert_eq!(x.sum_axis(1, true).shape(), vec![2, 1]);
    /// ```
    #[track_caller]
    pub fn sum_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        let value = self.value_ref().sum_axis(axis, keepdim);
        self.record_unary(&SumAxis, Args::axis(axis, keepdim), value)
    }

    /// Means over `axis`, keeping it with size 1 when `keepdim`: `sum_axis / n`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]));
    /// assert_eq!(x.mean_axis(1, false).value().to_vec(), vec![2., 5.]);
    /// ```
    #[track_caller]
    pub fn mean_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        shape::check_axis("mean_axis", axis, &self.shape());
        let summed = self.sum_axis(axis, keepdim);
        summed * (T::ONE / T::from_usize(self.shape()[axis]))
    }

    /// Maximum over `axis`, keeping it with size 1 when `keepdim`. The gradient flows to the
    /// first maximal element of each lane.
    ///
    /// # Panics
    /// If `axis` is out of range or empty.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1., 5., 3., 4., 2., 6.], &[2, 3]));
    /// let m = x.max_axis(1, false);
    /// assert_eq!(m.value().to_vec(), vec![5., 6.]);
    /// assert_eq!(m.sum().backward()[x].to_vec(), vec![0., 1., 0., 0., 0., 1.]);
    /// ```
    #[track_caller]
    pub fn max_axis(self, axis: usize, keepdim: bool) -> Var<'t, T> {
        let value = self.value_ref().max_axis(axis, keepdim);
        self.record_unary(&MaxAxis, Args::axis(axis, keepdim), value)
    }

    /// Sums a broadcast value back down to `shape`: the adjoint of [`Var::broadcast_to`].
    ///
    /// # Panics
    /// If `shape` does not broadcast to this var's shape.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones(&[2, 3]));
    /// assert_eq!(x.sum_to(&[3]).value().to_vec(), vec![2., 2., 2.]);
    /// ```
    #[track_caller]
    pub fn sum_to(self, shape: &[usize]) -> Var<'t, T> {
        if self.shape() == shape {
            return self;
        }
        let value = self.value_ref().sum_to(shape);
        self.record_unary(&SumTo, Args::None, value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn max_axis_sends_gradient_to_first_maximum_on_ties() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![2.0, 2.0, 1.0], &[3]));
        let g = x.max_axis(0, false).backward();
        assert_eq!(g[x].to_vec(), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn mean_axis_keepdim_gradient_is_one_over_n() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::zeros(&[2, 4]));
        let g = x.mean_axis(1, true).sum().backward();
        assert_eq!(g[x].to_vec(), vec![0.25; 8]);
    }
}
