//! Binary cross-entropy on logits as one op, `(1 - y)·x + max(-x, 0) + ln(1 + e^-|x|)` per
//! element, as PyTorch computes it: exact in the tails (`ln(1 + e^-|x|)` by `log1p`, which a
//! composite `ln(1 + e)` rounds to 0 from |x| ≈ 17 in f32), with PyTorch's values at infinite
//! logits, and with the gradient `σ(x) - y` everywhere (a composite of `relu` and `abs` has a
//! kink at 0 whose subgradients give `1 - y` there).

use super::{Args, Fwd, Op, Operand, Primitive, Vjp};
use crate::{Float, Tensor, Var};

/// The elementwise loss of logits `x` against targets `y` (one shape).
pub(crate) struct BceWithLogits;

impl<T: Float> Op<T> for BceWithLogits {
    fn name(&self) -> &'static str {
        "binary_cross_entropy_with_logits"
    }
    fn rule(&self) -> &'static str {
        "l = (1-y)x + max(-x,0) + ln(1+e^-|x|): grad_x = grad_out (sigmoid(x) - y), grad_y = -grad_out x"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let (x, y, g) = (cx.x(), cx.y(), cx.grad_out);
        [
            cx.need(0, || g.mul(&x.sigmoid().sub(y))),
            cx.need(1, || g.mul(x).neg()),
        ]
    }
}

impl<T: Float> Primitive<T> for BceWithLogits {
    fn forward(&self, cx: &Fwd<'_, T>) -> Tensor<T> {
        let (x, y) = (cx.inputs[0], cx.inputs[1]);
        x.zip_map("binary_cross_entropy_with_logits", y, |x, y| {
            let m = if -x > T::ZERO { -x } else { T::ZERO };
            let tail = T::from_f64((-x.abs()).exp().to_f64().ln_1p());
            (T::ONE - y) * x + m + tail
        })
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The elementwise binary cross-entropy of these logits against `targets` (one shape, which
    /// the caller checks): the loss [`crate::loss::binary_cross_entropy_with_logits`] averages.
    #[track_caller]
    pub(crate) fn bce_with_logits(self, targets: Var<'t, T>) -> Var<'t, T> {
        Var::record_op(&BceWithLogits, Args::None, None, &[self, targets])
    }
}
