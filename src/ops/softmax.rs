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
        [cx.need(0, || g.mul_softmax_slope(y, axis)), None]
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

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    /// Rows of several lengths (below and above the 16 lanes of the vector maximum and the 128
    /// of a sum block) with masked (−inf) entries (never a whole row), in f32 and f64.
    fn rows<T: crate::Float>(n: usize) -> Tensor<T> {
        Tensor::from_fn(&[5, n], |i| {
            if i % 7 == 3 && n > 1 {
                T::NEG_INFINITY
            } else {
                T::from_f64(((i as f64) * 0.61).sin() * 4.0)
            }
        })
    }

    fn last_axis_paths_agree<T: crate::Float>() {
        for n in [1, 5, 16, 37, 64, 200] {
            let x = rows::<T>(n);
            let xt = x.transpose(0, 1);
            // The per-row kernel (last axis) against the gathered-lane kernel (first axis).
            for (fast, lanes) in [
                (x.softmax(1), xt.softmax(0)),
                (x.log_softmax(1), xt.log_softmax(0)),
            ] {
                assert_eq!(fast.to_vec(), lanes.transpose(0, 1).to_vec(), "n = {n}");
            }
            let p = x.softmax(1);
            for row in p.to_vec().chunks(n) {
                let s: f64 = row.iter().map(|v| v.to_f64()).sum();
                assert!((s - 1.0).abs() < 1e-5, "n = {n}: row sums to {s}");
            }
            // The fused first-order gradient equals the recorded rule's, bit for bit.
            let tape = Tape::<T>::new();
            let xv = tape.var(x.clone());
            let w = tape.constant(Tensor::from_fn(&[5, n], |i| T::from_f64((i as f64 * 0.3).cos())));
            let loss = (xv.softmax(1) * w).sum();
            let eager = loss.backward()[xv].clone();
            let recorded = loss.grad(&[xv])[0].value();
            assert_eq!(eager.to_vec(), recorded.to_vec(), "n = {n}");
            assert!(eager.all_finite());
        }
    }

    #[test]
    fn softmax_along_the_last_axis_matches_the_lane_kernel_and_the_recorded_rule() {
        last_axis_paths_agree::<f32>();
        last_axis_paths_agree::<f64>();
    }
}
