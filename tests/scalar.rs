//! Scalar (rank-0) expressions in the style of micrograd, checked against hand-derived values,
//! exact rationals and an independent forward-mode (dual number) evaluation.

use std::ops::{Add, Div, Mul, Neg, Sub};

use tapegrad::{Param, Tape, Tensor, Var};

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{what}: got {got}, expected {want}"
    );
}

#[test]
fn micrograd_sanity_check() {
    // micrograd test/test_engine.py::test_sanity_check, x = -4:
    //   z = 2x + 2 + x = 3x + 2 = -10            dz/dx = 3
    //   q = relu(z) + z·x = 0 + 40 = 40          dq/dx = relu'(z)·3 + 3x + z = 0 - 12 - 10 = -22
    //   h = relu(z·z) = 100                      dh/dx = 2z·3 = -60 (z² > 0)
    //   y = h + q + q·x = 100 + 40 - 160 = -20
    //   dy/dx = dh/dx + dq/dx + (dq/dx·x + q) = -60 - 22 + (88 + 40) = 46
    let tape = Tape::<f64>::new();
    let x = tape.var(-4.0);
    let z = 2.0 * x + 2.0 + x;
    let q = z.relu() + z * x;
    let h = (z * z).relu();
    let y = h + q + q * x;
    assert_eq!(y.item(), -20.0);
    let grads = y.backward();
    assert_eq!(grads[x].item(), 46.0);
    // Intermediate gradients: dy/dq = 1 + x = -3, dy/dh = 1, dy/dz = dy/dq·(relu'(z) + x) + dy/dh·2z
    // = -3·(0 - 4) + 1·(-20) = -8.
    assert_eq!(grads[q].item(), -3.0);
    assert_eq!(grads[h].item(), 1.0);
    assert_eq!(grads[z].item(), -8.0);
}

/// What the micrograd `test_more_ops` expression needs, so that one generic function builds it
/// on tapegrad vars (reverse mode) and on dual numbers (forward mode, independent of tapegrad).
trait Scalar:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
{
    fn relu(self) -> Self;
    fn powi(self, n: i32) -> Self;
}

impl Scalar for Var<'_, f64> {
    fn relu(self) -> Self {
        Var::relu(self)
    }
    fn powi(self, n: i32) -> Self {
        Var::powi(self, n)
    }
}

/// A dual number `v + d·ε` (ε² = 0): `d` carries the derivative along one input direction.
#[derive(Clone, Copy, Debug)]
struct Dual {
    v: f64,
    d: f64,
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual {
            v: self.v + o.v,
            d: self.d + o.d,
        }
    }
}
impl Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual {
            v: self.v - o.v,
            d: self.d - o.d,
        }
    }
}
impl Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual {
            v: self.v * o.v,
            d: self.d * o.v + self.v * o.d,
        }
    }
}
impl Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        Dual {
            v: self.v / o.v,
            d: (self.d * o.v - self.v * o.d) / (o.v * o.v),
        }
    }
}
impl Neg for Dual {
    type Output = Dual;
    fn neg(self) -> Dual {
        Dual {
            v: -self.v,
            d: -self.d,
        }
    }
}
impl Add<f64> for Dual {
    type Output = Dual;
    fn add(self, c: f64) -> Dual {
        Dual {
            v: self.v + c,
            d: self.d,
        }
    }
}
impl Mul<f64> for Dual {
    type Output = Dual;
    fn mul(self, c: f64) -> Dual {
        Dual {
            v: self.v * c,
            d: self.d * c,
        }
    }
}
impl Div<f64> for Dual {
    type Output = Dual;
    fn div(self, c: f64) -> Dual {
        Dual {
            v: self.v / c,
            d: self.d / c,
        }
    }
}
impl Scalar for Dual {
    fn relu(self) -> Dual {
        if self.v > 0.0 {
            self
        } else {
            Dual { v: 0.0, d: 0.0 }
        }
    }
    fn powi(self, n: i32) -> Dual {
        Dual {
            v: self.v.powi(n),
            d: f64::from(n) * self.v.powi(n - 1) * self.d,
        }
    }
}

/// micrograd test/test_engine.py::test_more_ops, with `c += e` written `c = c + e` and constants
/// on the left (`1 + c`, `3 * d`, `10.0 / f`) rewritten as `c + 1`, `d * 3`, `f.powi(-1) * 10`
/// so that one generic body serves both number types.
fn more_ops<S: Scalar>(a: S, b: S) -> S {
    let c = a + b;
    let d = a * b + b.powi(3);
    let c = c + (c + 1.0);
    let c = c + (c + 1.0 + (-a));
    let d = d + (d * 2.0 + (b + a).relu());
    let d = d + (d * 3.0 + (b - a).relu());
    let e = c - d;
    let f = e.powi(2);
    let g = f / 2.0;
    g + f.powi(-1) * 10.0
}

#[test]
fn micrograd_more_ops() {
    // By hand with a = -4, b = 2 (total derivatives as (d/da, d/db)):
    //   c = a + b = -2                       (1, 1)
    //   d = ab + b³ = -8 + 8 = 0             (b, a + 3b²) = (2, 8)
    //   c = c + (c + 1) = 2c + 1 = -3        (2, 2)
    //   c = c + (c + 1 - a) = 2c + 1 - a = -1 (3, 4)
    //   d = 3d + relu(b + a) = 0             b + a = -2, relu' = 0: (6, 24)
    //   d = 4d + relu(b - a) = 6             b - a = 6, relu' = 1: (24 - 1, 96 + 1) = (23, 97)
    //   e = c - d = -7                       (3 - 23, 4 - 97) = (-20, -93)
    //   f = e² = 49;  g = f/2 + 10/f = 24.5 + 10/49
    //   dg/de = (1/2 - 10/f²)·2e = (1/2 - 10/2401)·(-14) = -7 + 140/2401
    //   dg/da = -20·dg/de = 140 - 2800/2401 ≈ 138.8338
    //   dg/db = -93·dg/de = 651 - 13020/2401 ≈ 645.5773
    // (micrograd's README prints 24.7041, 138.8338 and 645.5773.)
    let g_exact = 24.5 + 10.0 / 49.0;
    let da_exact = 140.0 - 2800.0 / 2401.0;
    let db_exact = 651.0 - 13020.0 / 2401.0;

    // Forward mode, one direction at a time: independent of tapegrad.
    let along_a = more_ops(Dual { v: -4.0, d: 1.0 }, Dual { v: 2.0, d: 0.0 });
    let along_b = more_ops(Dual { v: -4.0, d: 0.0 }, Dual { v: 2.0, d: 1.0 });
    assert_close(along_a.v, g_exact, "dual g");
    assert_close(along_a.d, da_exact, "dual dg/da");
    assert_close(along_b.d, db_exact, "dual dg/db");

    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(-4.0), tape.var(2.0));
    let g = more_ops(a, b);
    assert_close(g.item(), along_a.v, "tapegrad g");
    let grads = g.backward();
    assert_close(grads[a].item(), along_a.d, "tapegrad dg/da");
    assert_close(grads[b].item(), along_b.d, "tapegrad dg/db");
    assert!((grads[a].item() - 138.8338).abs() < 1e-4);
    assert!((grads[b].item() - 645.5773).abs() < 1e-4);

    // The literal micrograd spelling with constants on the left records the same values.
    let c = a + b;
    let d = a * b + b.powi(3);
    let c = c + (c + 1.0);
    let c = c + (1.0 + c + (-a));
    let d = d + (d * 2.0 + (b + a).relu());
    let d = d + (3.0 * d + (b - a).relu());
    let e = c - d;
    let f = e.powi(2);
    let g2 = f / 2.0;
    let g2 = g2 + 10.0 / f;
    assert_close(g2.item(), g_exact, "literal g");
    let grads = g2.backward();
    assert_close(grads[a].item(), da_exact, "literal dg/da");
    assert_close(grads[b].item(), db_exact, "literal dg/db");
}

#[test]
fn micrograd_tanh_neuron() {
    // o = tanh(x1 w1 + x2 w2 + b), with n = x1 w1 + x2 w2 + b = asinh(1), so o = 1/√2 and
    // do/dn = 1 - o² = 1/2: do/dx1 = w1/2 = -1.5, do/dw1 = x1/2 = 1, do/dx2 = w2/2 = 0.5,
    // do/dw2 = x2/2 = 0, do/db = 1/2.
    let tape = Tape::<f64>::new();
    let (x1, x2) = (tape.var(2.0), tape.var(0.0));
    let (w1, w2) = (tape.var(-3.0), tape.var(1.0));
    let b = tape.var(6.0 + 1f64.asinh());
    let o = (x1 * w1 + x2 * w2 + b).tanh();
    assert_close(o.item(), std::f64::consts::FRAC_1_SQRT_2, "o");
    let g = o.backward();
    for (var, want, name) in [
        (x1, -1.5, "x1"),
        (w1, 1.0, "w1"),
        (x2, 0.5, "x2"),
        (w2, 0.0, "w2"),
        (b, 0.5, "b"),
    ] {
        assert!(
            (g[var].item() - want).abs() < 1e-12,
            "do/d{name} = {}, expected {want}",
            g[var].item()
        );
    }
}

#[test]
fn a_reused_node_accumulates_its_gradients() {
    // y = a·a + a·b + a with a = 3, b = 5: dy/da = 2a + b + 1 = 12, dy/db = a = 3.
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(3.0), tape.var(5.0));
    let y = a * a + a * b + a;
    assert_eq!(y.item(), 9.0 + 15.0 + 3.0);
    let g = y.backward();
    assert_eq!((g[a].item(), g[b].item()), (12.0, 3.0));

    // A reused intermediate: h = a + b = 8, y = h·h·h = h³: dy/dh = 3h² = 192 = dy/da = dy/db.
    let h = a + b;
    let y = h * h * h;
    let g = y.backward();
    assert_eq!((g[h].item(), g[a].item(), g[b].item()), (192.0, 192.0, 192.0));

    // Used many times in a sum: s = Σ_{k=1..10} k·a, ds/da = 55.
    let s = (1..=10).fold(tape.constant(0.0), |s, k| s + a * f64::from(k));
    assert_eq!(s.backward()[a].item(), 55.0);
}

#[test]
fn all_scalar_operators_and_functions() {
    // y = (x - 1)/(x + 1) - x·2 with x = 3: y = 0.5 - 6 = -5.5,
    // dy/dx = ((x+1) - (x-1))/(x+1)² - 2 = 2/16 - 2 = -1.875.
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let y = (x - 1.0) / (x + 1.0) - x * 2.0;
    assert_eq!(y.item(), -5.5);
    assert_eq!(y.backward()[x].item(), -1.875);

    // Constants on the left: y = 10 - x - 6/x with x = 3, dy/dx = -1 + 6/x² = -1/3.
    let y = 10.0 - x - 6.0 / x;
    assert_close(y.backward()[x].item(), -1.0 / 3.0, "10 - x - 6/x");
    assert_eq!((-x).backward()[x].item(), -1.0);

    // Elementwise functions at x = 0.5, against their derivatives.
    let t = Tape::<f64>::new();
    let x0 = 0.5f64;
    let x = t.var(x0);
    let s = 1.0 / (1.0 + (-x0).exp());
    let cases: [(Var<'_, f64>, f64, f64, &str); 9] = [
        (x.exp(), x0.exp(), x0.exp(), "exp"),
        (x.ln(), x0.ln(), 1.0 / x0, "ln"),
        (x.sqrt(), x0.sqrt(), 0.5 / x0.sqrt(), "sqrt"),
        (x.tanh(), x0.tanh(), 1.0 - x0.tanh().powi(2), "tanh"),
        (x.sigmoid(), s, s * (1.0 - s), "sigmoid"),
        (x.sin(), x0.sin(), x0.cos(), "sin"),
        (x.cos(), x0.cos(), -x0.sin(), "cos"),
        (x.powf(1.5), x0.powf(1.5), 1.5 * x0.sqrt(), "powf"),
        (x.powi(-2), 4.0, -2.0 / x0.powi(3), "powi"),
    ];
    for (y, value, slope, name) in cases {
        assert_close(y.item(), value, name);
        assert_close(y.backward()[x].item(), slope, name);
    }
    // relu and abs on either side of 0.
    let (p, n) = (t.var(2.0), t.var(-2.0));
    assert_eq!(
        (p.relu().backward()[p].item(), n.relu().backward()[n].item()),
        (1.0, 0.0)
    );
    assert_eq!(
        (p.abs().backward()[p].item(), n.abs().backward()[n].item()),
        (1.0, -1.0)
    );
}

#[test]
fn third_derivative_of_a_cube() {
    // y = x³ at x = 2: y' = 3x² = 12, y'' = 6x = 12, y''' = 6, y'''' = 0.
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    for y in [x.powi(3), x * x * x] {
        let d1 = y.grad(&[x])[0];
        let d2 = d1.grad(&[x])[0];
        let d3 = d2.grad(&[x])[0];
        let d4 = d3.grad(&[x])[0];
        assert_eq!(
            (y.item(), d1.item(), d2.item(), d3.item(), d4.item()),
            (8.0, 12.0, 12.0, 6.0, 0.0)
        );
        // Recorded gradients are ordinary vars: the eager pass through them agrees.
        assert_eq!(d2.backward()[x].item(), 6.0);
    }
}

#[test]
fn mixed_second_derivative() {
    // f = x²y + sin(y) at (x, y) = (3, 0.5): ∂f/∂x = 2xy = 3, ∂²f/∂y∂x = 2x = 6, ∂²f/∂x² = 2y = 1.
    let tape = Tape::<f64>::new();
    let (x, y) = (tape.var(3.0), tape.var(0.5));
    let f = x * x * y + y.sin();
    let [fx, fy] = f.grad(&[x, y])[..] else {
        unreachable!()
    };
    assert_eq!(fx.item(), 3.0);
    assert_close(fy.item(), 9.0 + 0.5f64.cos(), "df/dy");
    let [fxx, fxy] = fx.grad(&[x, y])[..] else {
        unreachable!()
    };
    assert_eq!((fxx.item(), fxy.item()), (1.0, 6.0));
    let fyy = fy.grad(&[y])[0];
    assert_close(fyy.item(), -0.5f64.sin(), "d2f/dy2");
}

#[test]
fn no_grad_values_are_constants() {
    // y = x·3 computed under no_grad is a constant 6: z = x·y has dz/dx = y = 6, not 2·3x = 36.
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let y = tape.no_grad(|| {
        assert!(!tape.is_recording());
        x * 3.0
    });
    assert!(tape.is_recording());
    assert_eq!(y.item(), 6.0);
    assert!(!y.requires_grad());
    assert_eq!(y.op(), None, "a no_grad value is a leaf");
    let z = x * y;
    let g = z.backward();
    assert_eq!(g[x].item(), 6.0);
    assert!(g.wrt(y).is_none());
    // A var created under no_grad does not require a gradient either.
    let w = tape.no_grad(|| tape.var(1.0));
    assert!(!w.requires_grad());
    assert!((w * x).backward().wrt(w).is_none());
}

#[test]
fn no_grad_restores_recording_after_a_panic() {
    let tape = Tape::<f64>::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tape.no_grad(|| panic!("inside"))));
    assert!(r.is_err());
    assert!(tape.is_recording());
}

#[test]
fn detach_and_constant_stop_gradients() {
    // y = x·detach(x) + c·x with x = 3, c = 5: dy/dx = detach(x) + c = 8 (not 2x + c = 11).
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let c = tape.constant(5.0);
    let d = x.detach();
    assert!(!d.requires_grad() && !c.requires_grad());
    let y = x * d + c * x;
    assert_eq!(y.item(), 24.0);
    let g = y.backward();
    assert_eq!(g[x].item(), 8.0);
    assert!(g.wrt(c).is_none(), "a constant has no gradient");
    assert!(g.wrt(d).is_none(), "a detached copy has no gradient");
    // A result that depends on constants only has nothing to differentiate: backward says so,
    // as PyTorch does ("element 0 of tensors does not require grad"), rather than returning
    // empty gradients that a training loop would apply without a word.
    let k = c * 2.0 + d;
    assert!(!k.requires_grad());
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.backward()))
        .expect_err("backward of a constant panics");
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(
        msg.contains("does not depend on any var that requires a gradient"),
        "{msg}"
    );
    let under_no_grad = tape.no_grad(|| x * 2.0);
    assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| under_no_grad.backward())).is_err());
}

#[test]
fn unused_var_has_no_gradient() {
    let tape = Tape::<f64>::new();
    let (x, unused) = (tape.var(1.0), tape.var(2.0));
    let g = (x * 4.0).backward();
    assert_eq!(g[x].item(), 4.0);
    assert!(g.wrt(unused).is_none());
    // Recorded gradients give zero instead.
    let y = x * 4.0;
    assert_eq!(y.grad(&[unused])[0].item(), 0.0);
}

#[test]
fn param_bound_twice_accumulates() {
    // loss = w·w + 3w with both factors separate bindings: d/dw = 2w + 3 = 9 at w = 3.
    let w = Param::new(Tensor::<f64>::scalar(3.0));
    let tape = Tape::new();
    let (w1, w2, w3) = (tape.param(&w), tape.param(&w), tape.param(&w));
    assert!(w1.is_param() && w2.is_param());
    let loss = w1 * w2 + w3 * 3.0;
    let g = loss.backward();
    assert_eq!(g.param(&w).unwrap().item(), 9.0);
    // Per binding: d/dw1 = w2 = 3, d/dw2 = w1 = 3, d/dw3 = 3.
    assert_eq!((g[w1].item(), g[w2].item(), g[w3].item()), (3.0, 3.0, 3.0));
    assert_eq!(g.params().count(), 1, "one parameter, however many bindings");
    // A clone is the same parameter.
    assert_eq!(g.param(&w.clone()).unwrap().item(), 9.0);
    // A parameter not on the tape has no gradient.
    assert!(g.param(&Param::new(Tensor::scalar(0.0))).is_none());
    // Bound under no_grad: a constant, and no gradient for the parameter.
    let v = Param::new(Tensor::<f64>::scalar(1.0));
    let t2 = Tape::new();
    let x = t2.var(2.0);
    let bound = t2.no_grad(|| t2.param(&v));
    assert!(!bound.is_param());
    assert!((bound * x).backward().param(&v).is_none());
}

#[test]
fn reset_reuses_the_tape() {
    let mut tape = Tape::<f64>::with_capacity(16);
    let w = Param::new(Tensor::<f64>::scalar(0.5));
    for step in 0..5 {
        tape.reset();
        assert!(tape.is_empty());
        let x = tape.var(f64::from(step));
        assert_eq!(x.id(), 0, "ids restart after reset");
        let p = tape.param(&w);
        let y = x * x * p;
        assert_eq!(tape.len(), 4);
        let g = y.backward();
        assert_eq!(g[x].item(), 2.0 * f64::from(step) * 0.5);
        assert_eq!(g.param(&w).unwrap().item(), f64::from(step * step));
    }
    // After a reset, recording is on.
    tape.reset();
    assert!(tape.is_recording());
}

#[test]
fn leaf_kinds_and_introspection() {
    let tape = Tape::<f32>::new();
    let x = tape.var(2.0);
    let c = tape.constant(1.0);
    let y = x * c;
    assert_eq!((x.op(), y.op()), (None, Some("mul")));
    assert_eq!(y.input_ids(), vec![x.id(), c.id()]);
    assert!(x.requires_grad() && !c.requires_grad() && y.requires_grad());
    assert!(!x.is_param());
    assert_eq!(y.backward()[x].item(), 1.0f32);
}

#[test]
fn f32_scalars() {
    // Same as micrograd_sanity_check in f32: all intermediate values are small integers, exact.
    let tape = Tape::<f32>::new();
    let x = tape.var(-4.0f32);
    let z = 2.0 * x + 2.0 + x;
    let q = z.relu() + z * x;
    let h = (z * z).relu();
    let y = h + q + q * x;
    assert_eq!((y.item(), y.backward()[x].item()), (-20.0, 46.0));
}

#[test]
#[should_panic(expected = "not one element")]
fn backward_of_a_non_scalar_without_seed_panics() {
    let tape = Tape::<f64>::new();
    let x = tape.var([1.0, 2.0]);
    let _ = (x * 2.0).backward();
}

#[test]
#[should_panic(expected = "belongs to another tape")]
fn gradients_from_before_a_reset_do_not_answer_for_new_vars() {
    let mut tape = Tape::<f64>::new();
    let grads = {
        let x = tape.var(2.0);
        (x * 3.0).backward()
    };
    tape.reset();
    let y = tape.var(5.0);
    // Node 0 again, but of the reset tape: the old gradients must not claim to know it.
    let _ = grads.wrt(y);
}

#[test]
fn powf_zero_has_zero_gradient_at_zero() {
    // x^0 = 1, so d/dx = 0 everywhere, including x = 0 (not 0 * 0^-1 = NaN), as in PyTorch.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![0.0, 1.5], &[2]));
    assert_eq!(x.powf(0.0).sum().backward()[x].to_vec(), vec![0.0, 0.0]);
}

#[test]
fn sum_of_an_empty_tensor_is_positive_zero() {
    let s = Tensor::<f64>::zeros(&[0]).sum().item();
    assert!(s == 0.0 && s.is_sign_positive());
}

/// PyTorch computes `pow(x, 0.5)` as `sqrt(x)`: at `-0` the value is `-0` and the slope `-inf`
/// (`torch.tensor(-0.).pow(0.5)` then `.backward()` gives `grad = -inf`); elsewhere the slope is
/// `1 / (2 sqrt(x))`, and its own derivative `-x^(-3/2) / 4` comes out of the recorded backward.
#[test]
fn powf_one_half_is_sqrt_as_in_pytorch() {
    fn check<T: tapegrad::Float + std::fmt::Debug>() {
        let tape = Tape::<T>::new();
        let x = tape.var(T::from_f64(-0.0));
        let y = x.powf(T::from_f64(0.5));
        assert!(y.item() == T::ZERO && y.item().to_f64().is_sign_negative());
        let g = y.backward()[x].item().to_f64();
        assert_eq!(g, f64::NEG_INFINITY);

        // The tensor path agrees with the scalar one.
        let xs = tape.var(Tensor::from_vec(vec![T::from_f64(-0.0), T::from_f64(4.0)], &[2]));
        let ys = xs.powf(T::from_f64(0.5));
        let gs = ys.sum().backward()[xs].clone();
        assert_eq!(gs.as_slice()[0].to_f64(), f64::NEG_INFINITY);
        assert_eq!(gs.as_slice()[1].to_f64(), 0.25);
        assert_eq!(ys.value().as_slice()[1].to_f64(), 2.0);

        let x = tape.var(T::from_f64(4.0));
        let dy = x.powf(T::from_f64(0.5)).grad(&[x])[0];
        assert_eq!(dy.item().to_f64(), 0.25);
        let d2y = dy.grad(&[x])[0].item().to_f64();
        assert!((d2y - (-1.0 / 32.0)).abs() < 1e-7, "{d2y}");
    }
    check::<f32>();
    check::<f64>();
}
