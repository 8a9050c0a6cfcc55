//! Softmax and log-softmax along an axis, numerically stable for inputs as large as ±1000
//! (the maximum of each lane is subtracted before exponentiating).

use super::{Args, Op, Operand, Vjp};
use crate::{Float, Var};

/// Softmax `y = e^x / Σ e^x`. Jacobian-vector product: `y ⊙ (g - Σ g ⊙ y)`.
pub(crate) struct Softmax;

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn rule(&self) -> &'static str {
        "dy_i/dx_j = y_i (δij - y_j): grad_x = out * (grad_out - sum(grad_out * out, axis))"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("softmax node without its axis")
        };
        let axis = axis as usize;
        let (y, g) = (cx.output, cx.grad_out);
        [
            cx.need(0, || {
                let gy = g.mul(y);
                gy.sub(&y.mul(&gy.sum_axis(axis, true)))
            }),
            None,
        ]
    }
}

/// Log-softmax `y = x - ln Σ e^x`. Jacobian-vector product: `g - e^y Σ g`.
pub(crate) struct LogSoftmax;

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn rule(&self) -> &'static str {
        "dy_i/dx_j = δij - softmax_j: grad_x = grad_out - exp(out) * sum(grad_out, axis)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Axis { axis, .. } = cx.args else {
            unreachable!("log_softmax node without its axis")
        };
        let axis = axis as usize;
        let (y, g) = (cx.output, cx.grad_out);
        [cx.need(0, || g.sub(&y.exp().mul(&g.sum_axis(axis, true)))), None]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Softmax along `axis`: `exp(x) / sum(exp(x))`, stable for large inputs.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1000., 1000., -1000.], &[3]));
    /// let y = x.softmax(0);
    /// assert_eq!(y.value().to_vec(), vec![0.5, 0.5, 0.0]);
    /// ```
    #[track_caller]
    pub fn softmax(self, axis: usize) -> Var<'t, T> {
        let value = self.value_ref().softmax(axis);
        self.record_unary(&Softmax, Args::axis(axis, true), value)
    }

    /// Log-softmax along `axis`: `x - ln(sum(exp(x)))`, stable for large inputs.
    ///
    /// # Panics
    /// If `axis` is out of range.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1000., 0.], &[2]));
    /// let y = x.log_softmax(0);
    /// assert_eq!(y.value().to_vec(), vec![0.0, -1000.0]);
    /// assert!(y.sum().backward()[x].all_finite());
    /// ```
    #[track_caller]
    pub fn log_softmax(self, axis: usize) -> Var<'t, T> {
        let value = self.value_ref().log_softmax(axis);
        self.record_unary(&LogSoftmax, Args::axis(axis, true), value)
    }
}
