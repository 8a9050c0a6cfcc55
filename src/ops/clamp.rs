//! Clamping and elementwise extrema: clamp, maximum, minimum.
//!
//! All three are piecewise linear, so their rules multiply the gradient by a constant mask (a
//! constant of the rule, like relu's step) and second derivatives are exactly 0, as in PyTorch.
//! Clamp's mask is where the output equals the input (`min ≤ x ≤ max`, bounds included), so the
//! rule needs no arguments; maximum and minimum send half the gradient to each side at ties.

use super::{Args, Op, Operand, Vjp};
use crate::tensor::{Work, shape};
use crate::{Float, Tensor, Var};

/// `min` below `min`, `max` above `max`, `x` between (and NaN stays NaN).
#[inline(always)]
fn clamp_value<T: Float>(x: T, min: T, max: T) -> T {
    let y = if x < min { min } else { x };
    if y > max { max } else { y }
}

/// Clamping to `[min, max]`: the gradient passes where the output equals the input.
pub(crate) struct Clamp;

impl<T: Float> Op<T> for Clamp {
    fn name(&self) -> &'static str {
        "clamp"
    }
    fn rule(&self) -> &'static str {
        "d clamp(x)/dx = 1 where min <= x <= max (out = x), else 0: grad_x = grad_out there"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        [
            cx.need(0, || {
                let inside = cx.x().with_value(|x| {
                    cx.output
                        .with_value(|y| x.zip_map("clamp", y, |x, y| if x == y { T::ONE } else { T::ZERO }))
                });
                cx.grad_out.mul_constant(inside)
            }),
            None,
        ]
    }
}

/// The weight of `a`'s side in the gradient of `maximum(a, b)` (`larger`) or `minimum(a, b)`:
/// 1 where it is the one taken, 1/2 at ties, 0 elsewhere (and where either is NaN).
fn side_weights<T: Float, G: Operand<T>>(op: &str, a: &G, b: &G, larger: bool) -> Tensor<T> {
    a.with_value(|a| {
        b.with_value(|b| {
            a.zip_map(op, b, |p, q| {
                let wins = if larger { p > q } else { p < q };
                if wins {
                    T::ONE
                } else if p == q {
                    T::from_f64(0.5)
                } else {
                    T::ZERO
                }
            })
        })
    })
}

/// The elementwise maximum of two broadcast inputs.
pub(crate) struct Maximum;

/// The elementwise minimum of two broadcast inputs.
pub(crate) struct Minimum;

/// The rule of maximum (`larger`) and minimum.
#[track_caller]
fn extremum_vjp<T: Float, G: Operand<T>>(op: &str, cx: &Vjp<'_, G>, larger: bool) -> [Option<G>; 2] {
    let (x, y, g) = (cx.x(), cx.y(), cx.grad_out);
    [
        cx.need(0, || {
            g.mul_constant(side_weights(op, x, y, larger)).sum_to_like(x)
        }),
        cx.need(1, || {
            g.mul_constant(side_weights(op, y, x, larger)).sum_to_like(y)
        }),
    ]
}

impl<T: Float> Op<T> for Maximum {
    fn name(&self) -> &'static str {
        "maximum"
    }
    fn rule(&self) -> &'static str {
        "grad_x = grad_out where x > y, half of it where x == y, else 0 (and y alike), \
         summed to each input's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        extremum_vjp("maximum", cx, true)
    }
}

impl<T: Float> Op<T> for Minimum {
    fn name(&self) -> &'static str {
        "minimum"
    }
    fn rule(&self) -> &'static str {
        "grad_x = grad_out where x < y, half of it where x == y, else 0 (and y alike), \
         summed to each input's shape"
    }
    fn vjp<G: Operand<T>>(&self, cx: &Vjp<'_, G>) -> [Option<G>; 2] {
        extremum_vjp("minimum", cx, false)
    }
}

/// The larger of `a` and `b`, NaN if either is (a select, so that the loop vectorises).
#[inline(always)]
fn max_value<T: Float>(a: T, b: T) -> T {
    if a > b || a.is_nan() { a } else { b }
}

/// The smaller of `a` and `b`, NaN if either is.
#[inline(always)]
fn min_value<T: Float>(a: T, b: T) -> T {
    if a < b || a.is_nan() { a } else { b }
}

impl<'t, T: Float> Var<'t, T> {
    /// Clamps every element to `[min, max]` (`torch.clamp`). Pass `T::from_f64(f64::INFINITY)`
    /// (or `f32::INFINITY`, `f64::NEG_INFINITY`, ...) to leave a side open. The gradient passes
    /// where `min ≤ x ≤ max`, bounds included (as PyTorch), and is 0 elsewhere; NaN inputs stay
    /// NaN with gradient 0.
    ///
    /// # Panics
    /// If a bound is NaN or `min > max` (where PyTorch would set every element to `max`).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([-2.0, -1.0, 0.5, 3.0]);
    /// let y = x.clamp(-1.0, f64::INFINITY);
    /// assert_eq!(y.value().to_vec(), vec![-1.0, -1.0, 0.5, 3.0]);
    /// assert_eq!(y.sum().backward()[x].to_vec(), vec![0.0, 1.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn clamp(self, min: T, max: T) -> Var<'t, T> {
        assert!(
            !min.is_nan() && !max.is_nan(),
            "tapegrad: clamp: the bounds must not be NaN, got min {min} and max {max}"
        );
        assert!(min <= max, "tapegrad: clamp: min {min} is greater than max {max}");
        if let Some(v) = self
            .tape
            .record_scalar(&Clamp, Args::None, &[self.id], |x, _| clamp_value(x, min, max))
        {
            return v;
        }
        let value = self
            .value_ref()
            .map_elementwise(Work::Light, |x| clamp_value(x, min, max));
        self.record_unary(&Clamp, Args::None, value)
    }

    /// The elementwise maximum of two vars with NumPy broadcasting (`torch.maximum`); NaN if
    /// either element is NaN. The gradient goes to the larger element, half to each at ties (as
    /// PyTorch), summed back to each input's shape.
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together, or the vars live on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0, 3.0]);
    /// let y = tape.var(2.0);
    /// let m = x.maximum(y);
    /// assert_eq!(m.value().to_vec(), vec![2.0, 2.0, 3.0]);
    /// let g = m.sum().backward();
    /// assert_eq!(g[x].to_vec(), vec![0.0, 0.5, 1.0]);
    /// assert_eq!(g[y].item(), 1.5);
    /// ```
    #[track_caller]
    pub fn maximum(self, other: Var<'t, T>) -> Var<'t, T> {
        self.extremum(other, &Maximum, "maximum", max_value)
    }

    /// The elementwise minimum of two vars with NumPy broadcasting (`torch.minimum`); NaN if
    /// either element is NaN. The gradient goes to the smaller element, half to each at ties (as
    /// PyTorch), summed back to each input's shape.
    ///
    /// # Panics
    /// If the shapes cannot be broadcast together, or the vars live on different tapes.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 5.0, -1.0, 4.0], &[2, 2]));
    /// let y = tape.var([2.0, 4.0]);
    /// let m = x.minimum(y);
    /// assert_eq!(m.value().to_vec(), vec![1.0, 4.0, -1.0, 4.0]);
    /// let g = m.sum().backward();
    /// assert_eq!(g[x].to_vec(), vec![1.0, 0.0, 1.0, 0.5]);
    /// assert_eq!(g[y].to_vec(), vec![0.0, 1.5]);
    /// ```
    #[track_caller]
    pub fn minimum(self, other: Var<'t, T>) -> Var<'t, T> {
        self.extremum(other, &Minimum, "minimum", min_value)
    }

    #[track_caller]
    fn extremum<O: Op<T>>(
        self,
        other: Var<'t, T>,
        op: &'static O,
        name: &str,
        f: fn(T, T) -> T,
    ) -> Var<'t, T> {
        self.check_same_tape(other, name);
        if let Some(v) = self.tape.record_scalar(op, Args::None, &[self.id, other.id], f) {
            return v;
        }
        let value = {
            let (a, b) = (self.value_ref(), other.value_ref());
            shape::broadcast_shape(name, a.shape(), b.shape());
            a.zip_map(name, &b, f)
        };
        self.record_binary(other, op, Args::None, value)
    }
}
