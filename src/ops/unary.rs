//! Elementwise functions: exp ln sqrt abs tanh sigmoid relu powf powi sin cos.
//!
//! Rules use the output `y` where it is cheaper (exp, tanh, sigmoid, sqrt). Kinks (abs and relu
//! at 0) use a constant mask, so their second derivative is 0, as it is everywhere else.

use super::{Args, Op, Operand, Vjp};
use crate::tensor::elementwise;
use crate::{Float, Var};

macro_rules! unary_op {
    (
        $(#[$doc:meta])*
        $op:ident, $method:ident, $name:literal, $rule:literal,
        |$cx:ident, $g:ident| $vjp:expr
    ) => {
        $(#[$doc])*
        pub(crate) struct $op;

        impl<T: Float> Op<T> for $op {
            fn name(&self) -> &'static str {
                $name
            }
            fn rule(&self) -> &'static str {
                $rule
            }
            fn vjp<G: Operand<T>>(&self, $cx: &Vjp<'_, G>) -> [Option<G>; 2] {
                let $g = $cx.grad_out;
                [$cx.need(0, || $vjp), None]
            }
        }

        impl<'t, T: Float> Var<'t, T> {
            $(#[$doc])*
            ///
            /// ```
            /// use tapegrad::Tape;
            /// let tape = Tape::<f64>::new();
            /// let x = tape.var([0.5, 1.5]);
            #[doc = concat!("let y = x.", stringify!($method), "();")]
            #[doc = concat!("assert_eq!(y.value(), x.value().", stringify!($method), "());")]
            /// let grads = y.sum().backward();
            /// assert_eq!(grads[x].shape(), &[2]);
            /// ```
            #[track_caller]
            pub fn $method(self) -> Var<'t, T> {
                let scalar = |x: T, _| elementwise::$method(x);
                if let Some(v) = self.tape.record_scalar(&$op, Args::None, &[self.id], scalar) {
                    return v;
                }
                let value = self.value_ref().$method();
                self.record_unary(&$op, Args::None, value)
            }
        }
    };
}

unary_op!(
    /// Elementwise `e^x`. Derivative: `e^x`, the output itself.
    Exp, exp, "exp", "d(e^x)/dx = e^x: grad_x = grad_out * out",
    |cx, g| g.mul(cx.output)
);

unary_op!(
    /// Elementwise natural logarithm. Derivative: `1/x`.
    Ln, ln, "ln", "d(ln x)/dx = 1/x: grad_x = grad_out / x",
    |cx, g| g.div(cx.x())
);

unary_op!(
    /// Elementwise square root. Derivative: `1 / (2 sqrt(x))`.
    Sqrt, sqrt, "sqrt", "d(sqrt x)/dx = 1/(2 sqrt x): grad_x = grad_out / (2 out)",
    |cx, g| g.div(cx.output).scale(T::from_f64(0.5))
);

unary_op!(
    /// Elementwise absolute value. Derivative: `sign(x)` (0 at 0, as in PyTorch).
    Abs, abs, "abs", "d|x|/dx = sign(x): grad_x = grad_out * sign(x)",
    |cx, g| g.mul_constant_of(cx.x(), elementwise::sign)
);

unary_op!(
    /// Elementwise hyperbolic tangent. Derivative: `1 - tanh²(x)`.
    Tanh, tanh, "tanh", "d(tanh x)/dx = 1 - tanh^2 x: grad_x = grad_out * (1 - out^2)",
    |cx, g| g.mul_tanh_slope(cx.output)
);

unary_op!(
    /// Elementwise logistic sigmoid `1 / (1 + e^-x)`. Derivative: `σ(x)(1 - σ(x))`.
    Sigmoid, sigmoid, "sigmoid", "d(sigmoid x)/dx = s(1-s): grad_x = grad_out * out * (1 - out)",
    |cx, g| g.mul_sigmoid_slope(cx.output)
);

unary_op!(
    /// Elementwise `max(x, 0)`. Derivative: 1 where `x > 0`, else 0 (0 at the kink, as in
    /// PyTorch); the second derivative is 0.
    Relu, relu, "relu", "d(relu x)/dx = [x > 0]: grad_x = grad_out where x > 0, else 0",
    |cx, g| g.mul_constant_of(cx.x(), elementwise::step)
);

unary_op!(
    /// Elementwise sine. Derivative: `cos(x)`.
    Sin, sin, "sin", "d(sin x)/dx = cos x: grad_x = grad_out * cos(x)",
    |cx, g| g.mul(&cx.x().cos())
);

unary_op!(
    /// Elementwise cosine. Derivative: `-sin(x)`.
    Cos, cos, "cos", "d(cos x)/dx = -sin x: grad_x = -grad_out * sin(x)",
    |cx, g| g.mul(&cx.x().sin()).neg()
);

/// Elementwise `x^p`, real exponent. Derivative: `p·x^(p-1)`.
pub(crate) struct Powf;

impl<T: Float> Op<T> for Powf {
    fn name(&self) -> &'static str {
        "powf"
    }
    fn rule(&self) -> &'static str {
        "d(x^p)/dx = p x^(p-1): grad_x = grad_out * p * x^(p-1)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Powf(p) = cx.args else {
            unreachable!("powf node without its exponent")
        };
        let p = T::from_f64(p);
        let g = cx.grad_out;
        [
            cx.need(0, || {
                if p == T::ZERO {
                    // x^0 = 1 everywhere: avoid 0 * x^-1, which is NaN at x = 0 (PyTorch gives 0).
                    g.scale(T::ZERO)
                } else if p == T::from_f64(0.5) {
                    // PyTorch computes x^0.5 as sqrt(x) and differentiates it as g / (2 sqrt(x)):
                    // the same away from 0, and -inf (not +inf) at x = -0, where sqrt is -0.
                    g.div(&cx.output.scale(T::from_f64(2.0)))
                } else {
                    g.mul(&cx.x().powf(p - T::ONE)).scale(p)
                }
            }),
            None,
        ]
    }
}

/// Elementwise `x^n`, integer exponent. Derivative: `n·x^(n-1)` (0 for `n = 0`).
pub(crate) struct Powi;

impl<T: Float> Op<T> for Powi {
    fn name(&self) -> &'static str {
        "powi"
    }
    fn rule(&self) -> &'static str {
        "d(x^n)/dx = n x^(n-1): grad_x = grad_out * n * x^(n-1)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let Args::Powi(n) = cx.args else {
            unreachable!("powi node without its exponent")
        };
        let g = cx.grad_out;
        [
            cx.need(0, || {
                if n == 0 {
                    // x^0 = 1 everywhere: avoid 0 * x^-1, which is NaN at x = 0.
                    g.scale(T::ZERO)
                } else {
                    g.mul(&cx.x().powi(n - 1)).scale(T::from_f64(n as f64))
                }
            }),
            None,
        ]
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `x^p` for a real exponent `p`. Derivative: `p·x^(p-1)`.
    ///
    /// As in PyTorch, `p = 0.5` is computed as `sqrt(x)` (correctly rounded) and differentiated
    /// as `1 / (2 sqrt(x))`, so `(-0)^0.5` is `-0` with slope `-inf`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(4.0);
    /// let y = x.powf(1.5);                        // 8
    /// assert_eq!(y.backward()[x].item(), 3.0);   // 1.5 · 4^0.5
    /// ```
    #[track_caller]
    pub fn powf(self, p: T) -> Var<'t, T> {
        if let Some(v) = self
            .tape
            .record_scalar(&Powf, Args::Powf(p.to_f64()), &[self.id], |x, _| {
                if p == T::from_f64(0.5) {
                    x.sqrt()
                } else {
                    x.powf(p)
                }
            })
        {
            return v;
        }
        let value = self.value_ref().powf(p);
        self.record_unary(&Powf, Args::Powf(p.to_f64()), value)
    }

    /// Elementwise `x^n` for an integer exponent `n`. Derivative: `n·x^(n-1)`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(-2.0);
    /// let y = x.powi(3);                          // -8
    /// assert_eq!(y.backward()[x].item(), 12.0);  // 3 · (-2)²
    /// ```
    #[track_caller]
    pub fn powi(self, n: i32) -> Var<'t, T> {
        if let Some(v) = self
            .tape
            .record_scalar(&Powi, Args::Powi(n), &[self.id], |x, _| x.powi(n))
        {
            return v;
        }
        let value = self.value_ref().powi(n);
        self.record_unary(&Powi, Args::Powi(n), value)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Tape, Tensor};

    #[test]
    fn sigmoid_at_zero_is_half_with_slope_a_quarter() {
        let tape = Tape::<f64>::new();
        let x = tape.var(0.0);
        let y = x.sigmoid();
        assert_eq!(y.item(), 0.5);
        assert_eq!(y.backward()[x].item(), 0.25); // σ(0)(1 - σ(0)) = 1/4
    }

    #[test]
    fn relu_and_abs_use_zero_at_the_kink() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![-1.0, 0.0, 2.0], &[3]));
        let g = (x.relu() + x.abs()).sum().backward();
        // relu': 0, 0, 1; abs': -1, 0, 1.
        assert_eq!(g[x].to_vec(), vec![-1.0, 0.0, 2.0]);
    }

    #[test]
    fn relu_second_derivative_is_zero() {
        let tape = Tape::<f64>::new();
        let x = tape.var(Tensor::from_vec(vec![-1.0, 2.0], &[2]));
        let dx = x.relu().sum().grad(&[x])[0];
        let ddx = dx.sum().grad(&[x])[0];
        assert_eq!(ddx.value().to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn sigmoid_does_not_overflow_at_extremes() {
        let t = Tensor::<f32>::from_vec(vec![-1000.0, 1000.0], &[2]).sigmoid();
        assert_eq!(t.to_vec(), vec![0.0, 1.0]);
    }

    #[test]
    fn powi_zero_has_zero_gradient_at_zero() {
        let tape = Tape::<f64>::new();
        let x = tape.var(0.0);
        assert_eq!(x.powi(0).backward()[x].item(), 0.0);
    }
}
