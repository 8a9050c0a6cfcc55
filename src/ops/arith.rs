//! Arithmetic with NumPy broadcasting: `+ - * /` and unary `-`, with vars or scalars on either
//! side. The backward of a broadcast input sums the gradient back to the input's shape.

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::{Args, Op, Operand, Vjp};
use crate::{Float, Tensor, Var};

/// Addition. d(x + y)/dx = 1, d(x + y)/dy = 1.
pub(crate) struct AddOp;

impl<T: Float> Op<T> for AddOp {
    fn name(&self) -> &'static str {
        "add"
    }
    fn rule(&self) -> &'static str {
        "d(x+y)/dx = 1, d(x+y)/dy = 1: grad_x = grad_out, grad_y = grad_out (summed over broadcast axes)"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let g = cx.grad_out;
        [
            cx.need(0, || g.clone().sum_to_like(cx.x())),
            cx.need(1, || g.clone().sum_to_like(cx.y())),
        ]
    }
}

/// Subtraction. d(x - y)/dx = 1, d(x - y)/dy = -1.
pub(crate) struct SubOp;

impl<T: Float> Op<T> for SubOp {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn rule(&self) -> &'static str {
        "d(x-y)/dx = 1, d(x-y)/dy = -1: grad_x = grad_out, grad_y = -grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let g = cx.grad_out;
        [
            cx.need(0, || g.clone().sum_to_like(cx.x())),
            cx.need(1, || g.neg().sum_to_like(cx.y())),
        ]
    }
}

/// Multiplication. d(x·y)/dx = y, d(x·y)/dy = x.
pub(crate) struct MulOp;

impl<T: Float> Op<T> for MulOp {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn rule(&self) -> &'static str {
        "d(x*y)/dx = y, d(x*y)/dy = x: grad_x = grad_out * y, grad_y = grad_out * x"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let g = cx.grad_out;
        [
            cx.need(0, || g.mul(cx.y()).sum_to_like(cx.x())),
            cx.need(1, || g.mul(cx.x()).sum_to_like(cx.y())),
        ]
    }
}

/// Division. d(x/y)/dx = 1/y, d(x/y)/dy = -x/y² = -out/y.
pub(crate) struct DivOp;

impl<T: Float> Op<T> for DivOp {
    fn name(&self) -> &'static str {
        "div"
    }
    fn rule(&self) -> &'static str {
        "d(x/y)/dx = 1/y, d(x/y)/dy = -x/y^2: grad_x = grad_out / y, grad_y = -grad_out * out / y"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        let g = cx.grad_out;
        [
            cx.need(0, || g.div(cx.y()).sum_to_like(cx.x())),
            cx.need(1, || g.mul(cx.output).div(cx.y()).neg().sum_to_like(cx.y())),
        ]
    }
}

/// Negation. d(-x)/dx = -1.
pub(crate) struct NegOp;

impl<T: Float> Op<T> for NegOp {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn rule(&self) -> &'static str {
        "d(-x)/dx = -1: grad_x = -grad_out"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [cx.need(0, || cx.grad_out.neg()), None]
    }
}

macro_rules! var_binary_operator {
    ($trait:ident, $method:ident, $sym:tt, $op:ident, $kernel:path) => {
        impl<'t, T: Float> $trait<Var<'t, T>> for Var<'t, T> {
            type Output = Var<'t, T>;
            /// Elementwise, with NumPy broadcasting.
            ///
            /// # Panics
            /// If the shapes cannot be broadcast together, or the vars live on different tapes.
            #[track_caller]
            #[inline(always)]
            fn $method(self, other: Var<'t, T>) -> Var<'t, T> {
                self.check_same_tape(other, stringify!($method));
                // The tensor path is out of line so that the rank-0 fast path stays small enough
                // to inline into the caller (a micrograd-style network is nothing but that path).
                #[track_caller]
                #[inline(never)]
                fn tensor_path<'t, T: Float>(a: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
                    let value = $kernel(&a.value_ref(), &b.value_ref());
                    a.record_binary(b, &$op, Args::None, value)
                }
                if let Some(v) = self.tape.record_scalar(&$op, Args::None, &[self.id, other.id], |x, y| x $sym y) {
                    return v;
                }
                tensor_path(self, other)
            }
        }

        impl<'t, T: Float> $trait<T> for Var<'t, T> {
            type Output = Var<'t, T>;
            /// With a scalar constant (recorded as a rank-0 constant node).
            #[track_caller]
            fn $method(self, other: T) -> Var<'t, T> {
                self.$method(self.tape.constant(other))
            }
        }

        impl<'t> $trait<Var<'t, f32>> for f32 {
            type Output = Var<'t, f32>;
            /// A scalar constant on the left (recorded as a rank-0 constant node).
            #[track_caller]
            fn $method(self, other: Var<'t, f32>) -> Var<'t, f32> {
                other.tape.constant(self).$method(other)
            }
        }

        impl<'t> $trait<Var<'t, f64>> for f64 {
            type Output = Var<'t, f64>;
            /// A scalar constant on the left (recorded as a rank-0 constant node).
            #[track_caller]
            fn $method(self, other: Var<'t, f64>) -> Var<'t, f64> {
                other.tape.constant(self).$method(other)
            }
        }
    };
}

var_binary_operator!(Add, add, +, AddOp, Tensor::add);
var_binary_operator!(Sub, sub, -, SubOp, Tensor::sub);
var_binary_operator!(Mul, mul, *, MulOp, Tensor::mul);
var_binary_operator!(Div, div, /, DivOp, Tensor::div);

impl<'t, T: Float> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    /// Elementwise negation.
    #[track_caller]
    fn neg(self) -> Var<'t, T> {
        if let Some(v) = self.tape.record_scalar(&NegOp, Args::None, &[self.id], |x, _| -x) {
            return v;
        }
        let value = -&*self.value_ref();
        self.record_unary(&NegOp, Args::None, value)
    }
}

#[cfg(test)]
mod tests {
    use crate::Tape;

    #[test]
    fn micrograd_style_expression_has_hand_derived_gradients() {
        // f = (a*b + c) / a with a = 2, b = -3, c = 10: f = b + c/a = 2.
        // df/da = -c/a² = -2.5, df/db = 1, df/dc = 1/a = 0.5.
        let tape = Tape::<f64>::new();
        let (a, b, c) = (tape.var(2.0), tape.var(-3.0), tape.var(10.0));
        let f = (a * b + c) / a;
        assert_eq!(f.item(), 2.0);
        let g = f.backward();
        assert_eq!((g[a].item(), g[b].item(), g[c].item()), (-2.5, 1.0, 0.5));
    }

    #[test]
    fn scalars_on_either_side() {
        // y = 2 - x/4 + x*3 - (1 + x); dy/dx = -1/4 + 3 - 1 = 1.75.
        let tape = Tape::<f32>::new();
        let x = tape.var(8.0);
        let y = 2.0 - x / 4.0 + x * 3.0 - (1.0 + x);
        assert_eq!(y.item(), 2.0 - 2.0 + 24.0 - 9.0);
        assert_eq!(y.backward()[x].item(), 1.75);
    }

    #[test]
    fn broadcast_gradient_sums_over_broadcast_axes() {
        // z = x + y with x [2, 3] and y [3]: dz/dy sums over the 2 rows.
        let tape = Tape::<f64>::new();
        let x = tape.var(crate::Tensor::zeros(&[2, 3]));
        let y = tape.var(crate::Tensor::zeros(&[3]));
        let g = (x + y).sum().backward();
        assert_eq!(g[y].to_vec(), vec![2.0; 3]);
        assert_eq!(g[x].to_vec(), vec![1.0; 6]);
    }
}
