//! Custom ops (`tapegrad::autograd`): the documented example ops gradient-checked in f64 (first
//! order, and second order for rules written with vars), the panics (a second derivative
//! through a first-order op, a gradient of the wrong shape or count), inputs without gradients,
//! names in `Var::op`, pictures and traces, a network with a custom activation trained with Adam
//! against the same network built from built-in ops, and a proptest over shapes and values.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use tapegrad::autograd::{CustomOp, FirstOrderOp, ForwardCtx, TensorCtx, VarCtx};
use tapegrad::nn::{Linear, Module};
use tapegrad::optim::{Adam, AdamConfig, Optimizer};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::viz::Dot;
use tapegrad::{Float, Tape, Tensor, Var, gradcheck, loss};

// ---- the example ops ------------------------------------------------------------------------

/// Round in the forward pass, identity in the backward pass.
struct RoundSte;
impl<T: Float> CustomOp<T> for RoundSte {
    fn name(&self) -> &'static str {
        "round_ste"
    }
    fn forward(&self, inputs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        inputs[0].map(|x| T::from_f64(x.to_f64().round()))
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(ctx.grad_output())]
    }
}

/// `log(1 - e^-x)`, switching between `log(-expm1(-x))` and `log1p(-e^-x)` at ln 2; the rule
/// `g·e^(-x - y)` reuses the output.
struct Log1mExp;
impl<T: Float> CustomOp<T> for Log1mExp {
    fn name(&self) -> &'static str {
        "log1mexp"
    }
    fn rule(&self) -> &'static str {
        "d/dx log(1 - e^-x) = e^(-x - y)"
    }
    fn forward(&self, inputs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        inputs[0].map(|x| T::from_f64(log1mexp(x.to_f64())))
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        let (x, y) = (ctx.input(0), ctx.output());
        vec![ctx.need(0, || ctx.grad_output() * (-x - y).exp())]
    }
}

fn log1mexp(x: f64) -> f64 {
    if x <= std::f64::consts::LN_2 {
        (-(-x).exp_m1()).ln()
    } else {
        (-(-x).exp()).ln_1p()
    }
}

/// Softplus from one `e^(-|x|)`; saves the sigmoid, so the first-order rule is `g·σ(x)`.
struct FusedSoftplus;
impl<T: Float> FirstOrderOp<T> for FusedSoftplus {
    fn name(&self) -> &'static str {
        "fused_softplus"
    }
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        let x = inputs[0];
        let e = x.map(|v| (-v.abs()).exp());
        let y = Tensor::from_fn(x.shape(), |i| {
            x.as_slice()[i].max(T::ZERO) + T::from_f64(e.as_slice()[i].to_f64().ln_1p())
        });
        if ctx.needs_input_grad(0) {
            ctx.save(Tensor::from_fn(x.shape(), |i| {
                let (v, e) = (x.as_slice()[i], e.as_slice()[i]);
                if v >= T::ZERO {
                    T::ONE / (T::ONE + e)
                } else {
                    e / (T::ONE + e)
                }
            }));
        }
        y
    }
    fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
        vec![ctx.need(0, || ctx.grad_output() * ctx.saved(0))]
    }
}

/// The same softplus with a rule on vars: `g·(1 - e^-y)` from the output, differentiable again.
struct SoftplusVar;
impl<T: Float> CustomOp<T> for SoftplusVar {
    fn name(&self) -> &'static str {
        "softplus_var"
    }
    fn forward(&self, inputs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        FirstOrderOp::forward(&FusedSoftplus, inputs, ctx)
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        let (g, y) = (ctx.grad_output(), ctx.output());
        vec![ctx.need(0, || g - g * (-y).exp())]
    }
}

/// What an op was told about its inputs: (in the forward pass?, `needs_input_grad` per input).
type NeedsLog = Vec<(bool, Vec<bool>)>;

/// `x·y + z` with three inputs; records which inputs its forward and rule were told need a
/// gradient, and (when `always_some`) returns a gradient for every input regardless.
#[derive(Clone, Default)]
struct Fma {
    always_some: bool,
    log: Arc<Mutex<NeedsLog>>,
}
impl Fma {
    fn new(always_some: bool) -> Fma {
        Fma {
            always_some,
            ..Fma::default()
        }
    }
    fn seen(&self) -> NeedsLog {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}
impl<T: Float> CustomOp<T> for Fma {
    fn name(&self) -> &'static str {
        "fma"
    }
    fn forward(&self, xs: &[&Tensor<T>], ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        let needs = (0..xs.len()).map(|i| ctx.needs_input_grad(i)).collect();
        self.log.lock().unwrap().push((true, needs));
        &(xs[0] * xs[1]) + xs[2]
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        let needs = (0..ctx.inputs().len()).map(|i| ctx.needs_input_grad(i)).collect();
        self.log.lock().unwrap().push((false, needs));
        let g = ctx.grad_output();
        let (x, y) = (ctx.input(0), ctx.input(1));
        if self.always_some {
            return vec![Some(g * y), Some(g * x), Some(g)];
        }
        vec![ctx.need(0, || g * y), ctx.need(1, || g * x), ctx.need(2, || g)]
    }
}

/// A rule that returns a gradient of shape `[1]` (or, with `count`, too few gradients).
struct BadShape;
impl<T: Float> CustomOp<T> for BadShape {
    fn name(&self) -> &'static str {
        "bad_shape"
    }
    fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        xs[0].clone()
    }
    fn backward<'t>(&self, ctx: &VarCtx<'_, 't, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(ctx.grad_output().sum().reshape(&[1]))]
    }
}
struct BadShapeFirstOrder;
impl<T: Float> FirstOrderOp<T> for BadShapeFirstOrder {
    fn name(&self) -> &'static str {
        "bad_shape_first_order"
    }
    fn forward(&self, xs: &[&Tensor<T>], _ctx: &mut ForwardCtx<T>) -> Tensor<T> {
        xs[0].clone()
    }
    fn backward(&self, ctx: &TensorCtx<'_, T>) -> Vec<Option<Tensor<T>>> {
        vec![Some(ctx.grad_output().sum().reshape(&[1])), None]
    }
}

fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match (err.downcast_ref::<String>(), err.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => s.to_string(),
        (None, None) => String::new(),
    }
}

fn close(a: &Tensor<f64>, b: &Tensor<f64>, tol: f64) -> bool {
    a.shape() == b.shape()
        && a.as_slice()
            .iter()
            .zip(b.as_slice())
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

// ---- gradient checks of the example ops ---------------------------------------------------

#[test]
fn log1mexp_is_accurate_on_both_sides_of_ln2_and_gradchecks_to_second_order() {
    let points = [1e-30, 1e-8, 0.01, 0.5, std::f64::consts::LN_2, 0.9, 5.0, 40.0];
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(points.to_vec(), &[points.len()]));
    let y = tape.custom(Log1mExp, &[x]);
    // The naive formula gives -inf at 1e-30 and 0 at 40; the stable one keeps every digit.
    assert_eq!(y.value().to_vec()[0], (1e-30f64).ln());
    assert!((y.value().to_vec()[7] + (-40f64).exp()).abs() < 1e-30);
    // First derivative 1/expm1(x), second -e^x/expm1(x)², both through recorded backward.
    let dy = y.sum().grad(&[x])[0];
    let d2y = dy.sum().grad(&[x])[0];
    for (i, &p) in points.iter().enumerate().skip(2) {
        let (d1, d2) = (1.0 / p.exp_m1(), -p.exp() / p.exp_m1().powi(2));
        assert!(
            (dy.value().to_vec()[i] - d1).abs() <= 1e-13 * d1.abs(),
            "d/dx at {p}"
        );
        assert!(
            (d2y.value().to_vec()[i] - d2).abs() <= 1e-12 * d2.abs(),
            "d²/dx² at {p}"
        );
    }
    // Against finite differences, on both sides of ln 2 and in a matrix.
    let x = Tensor::from_vec(vec![0.05, 0.3, 0.68, 0.71, 1.5, 3.0], &[2, 3]);
    gradcheck::check_custom_op(Log1mExp, &[x]).unwrap();
}

#[test]
fn log1mexp_in_f32_agrees_with_f64() {
    let points = vec![1e-6f32, 0.1, 0.69, 0.7, 2.0, 10.0];
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(points.clone(), &[6]));
    let y = tape.custom(Log1mExp, &[x]);
    let g = y.sum().backward();
    let h = y.sum().grad(&[x])[0].sum().grad(&[x])[0];
    for (i, &p) in points.iter().enumerate() {
        let p64 = p as f64;
        let (v, d1) = (log1mexp(p64), 1.0 / p64.exp_m1());
        assert!(
            (y.value().to_vec()[i] as f64 - v).abs() <= 1e-6 * v.abs(),
            "value at {p}"
        );
        assert!(
            (g[x].to_vec()[i] as f64 - d1).abs() <= 1e-5 * d1.abs(),
            "gradient at {p}"
        );
        assert!(h.value().to_vec()[i] < 0.0, "second derivative at {p}");
    }
}

#[test]
fn straight_through_matches_the_detach_formulation_to_second_order() {
    // The STE's gradient is deliberately not its forward's derivative (zero almost everywhere),
    // so finite differences cannot check it; it is checked against the usual formulation from
    // built-in ops, `x + (round(x) - x).detach()`, whose gradients are known to be right.
    let x0 = Tensor::from_vec(vec![-1.6, -0.2, 0.4, 1.49, 2.7, 3.2], &[2, 3]);
    let w = Tensor::from_vec(vec![0.5, -1.0, 2.0, 1.5, -0.25, 0.75], &[2, 3]);
    let run = |custom: bool| {
        let tape = Tape::<f64>::new();
        let x = tape.var(x0.clone());
        let q = if custom {
            tape.custom(RoundSte, &[x])
        } else {
            x + tape.constant(&x.value().map(f64::round) - &x.value())
        };
        let f = (q * q * tape.constant(w.clone()) + q.sin()).sum();
        let eager = f.backward()[x].clone();
        let g = f.grad(&[x])[0];
        let r = tape.constant(Tensor::from_vec(vec![1.0, 0.5, -1.0, 2.0, 0.3, -0.7], &[2, 3]));
        let hvp = (g * r).sum().grad(&[x])[0];
        (q.value(), eager, g.value(), hvp.value())
    };
    let (ours, reference) = (run(true), run(false));
    assert_eq!(ours.0.to_vec(), vec![-2.0, -0.0, 0.0, 1.0, 3.0, 3.0]);
    assert!(close(&ours.0, &reference.0, 1e-15));
    assert!(
        close(&ours.1, &reference.1, 1e-14),
        "{:?} vs {:?}",
        ours.1,
        reference.1
    );
    assert!(close(&ours.2, &reference.2, 1e-14));
    assert!(
        close(&ours.3, &reference.3, 1e-14),
        "{:?} vs {:?}",
        ours.3,
        reference.3
    );
    assert!(
        ours.3.as_slice().iter().any(|&v| v != 0.0),
        "a trivial second derivative"
    );
}

#[test]
fn fused_softplus_first_order_rule_gradchecks_and_matches_the_builtin() {
    let x = Tensor::from_vec(vec![-4.0, -0.5, 0.0, 0.3, 2.0, 8.0], &[3, 2]);
    gradcheck::check_first_order_op(FusedSoftplus, std::slice::from_ref(&x)).unwrap();
    gradcheck::check_custom_op(SoftplusVar, std::slice::from_ref(&x)).unwrap();
    let tape = Tape::<f64>::new();
    let v = tape.var(x);
    let (a, b) = (tape.custom_first_order(FusedSoftplus, &[v]), v.softplus());
    assert!(close(&a.value(), &b.value(), 1e-15));
    assert!(close(&a.sum().backward()[v], &b.sum().backward()[v], 1e-15));
    // A first derivative through recorded backward is fine too.
    assert!(close(
        &a.sum().grad(&[v])[0].value(),
        &b.sum().backward()[v],
        1e-15
    ));
}

#[test]
fn a_second_derivative_through_a_first_order_op_panics_naming_it() {
    let tape = Tape::<f64>::new();
    let x = tape.var([0.5, -1.0]);
    let y = (tape.custom_first_order(FusedSoftplus, &[x]) * x).sum();
    let dy = y.grad(&[x])[0];
    let message = panic_message(|| {
        dy.sum().grad(&[x]);
    });
    assert!(message.contains("`fused_softplus`"), "{message}");
    assert!(message.contains("first-order"), "{message}");
    let message = panic_message(|| {
        dy.sum().backward();
    });
    assert!(message.contains("`fused_softplus`"), "{message}");
    // And the checker, asked for second order, says the same.
    let message = panic_message(|| {
        let _ = gradcheck::check_second_order(
            |tape: &Tape<f64>, xs: &[Var<f64>]| tape.custom_first_order(FusedSoftplus, xs).sum(),
            &[Tensor::from_vec(vec![0.5], &[1])],
        );
    });
    assert!(message.contains("`fused_softplus`"), "{message}");
}

#[test]
fn the_gradcheck_helpers_catch_a_wrong_rule() {
    /// log1mexp with the rule 1 % off: finite differences must see it.
    struct Wrong;
    impl CustomOp<f64> for Wrong {
        fn name(&self) -> &'static str {
            "wrong"
        }
        fn forward(&self, xs: &[&Tensor<f64>], ctx: &mut ForwardCtx<f64>) -> Tensor<f64> {
            CustomOp::forward(&Log1mExp, xs, ctx)
        }
        fn backward<'t>(&self, ctx: &VarCtx<'_, 't, f64>) -> Vec<Option<Var<'t, f64>>> {
            let g = ctx.grad_output() * (-ctx.input(0) - ctx.output()).exp();
            vec![Some(g * 1.01)]
        }
    }
    let err = gradcheck::check_custom_op(Wrong, &[Tensor::from_vec(vec![0.5, 2.0], &[2])]).unwrap_err();
    assert_eq!((err.input, err.order), (0, 1));
    /// Right first derivative, but the rule is not differentiable the right way (it treats
    /// the output as a constant): only the second-order check can see it.
    struct Frozen;
    impl CustomOp<f64> for Frozen {
        fn name(&self) -> &'static str {
            "frozen"
        }
        fn forward(&self, xs: &[&Tensor<f64>], ctx: &mut ForwardCtx<f64>) -> Tensor<f64> {
            CustomOp::forward(&Log1mExp, xs, ctx)
        }
        fn backward<'t>(&self, ctx: &VarCtx<'_, 't, f64>) -> Vec<Option<Var<'t, f64>>> {
            let y = ctx.output().detach();
            vec![Some(ctx.grad_output() * (-ctx.input(0) - y).exp())]
        }
    }
    let x = Tensor::from_vec(vec![0.5, 2.0], &[2]);
    gradcheck::check(
        |tape: &Tape<f64>, xs: &[Var<f64>]| tape.custom(Frozen, xs).sum(),
        std::slice::from_ref(&x),
    )
    .unwrap();
    let err = gradcheck::check_custom_op(Frozen, &[x]).unwrap_err();
    assert_eq!(err.order, 2);
}

// ---- inputs, needs and checks ---------------------------------------------------------------

#[test]
fn an_op_with_three_inputs_gradchecks_and_constants_get_no_gradient() {
    let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.25], &[2, 2]);
    let y = Tensor::from_vec(vec![1.5, 0.5, -0.75, 3.0], &[2, 2]);
    let z = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], &[2, 2]);
    for always_some in [false, true] {
        gradcheck::check_custom_op(Fma::new(always_some), &[x.clone(), y.clone(), z.clone()]).unwrap();
        let fma = Fma::new(always_some);
        let tape = Tape::<f64>::new();
        let (a, b, c) = (tape.var(x.clone()), tape.constant(y.clone()), tape.var(z.clone()));
        let out = tape.custom(fma.clone(), &[a, b, c]);
        let grads = (out * out).sum().backward();
        assert!(grads.wrt(b).is_none(), "a constant input got a gradient");
        assert_eq!(grads[c], &out.value() * 2.0);
        assert_eq!(grads[a], &(&out.value() * 2.0) * &y);
        // Recorded: the constant's gradient is the zero of `grad` for an unused var.
        let gb = (out * out).sum().grad(&[b])[0];
        assert_eq!(gb.value(), Tensor::zeros(&[2, 2]));
        let seen = fma.seen();
        let want = vec![true, false, true];
        assert_eq!(
            seen,
            vec![(true, want.clone()), (false, want.clone()), (false, want)]
        );
    }
    // Under no_grad nothing needs a gradient and the result is a constant.
    let fma = Fma::new(false);
    let tape = Tape::<f64>::new();
    let a = tape.var(x.clone());
    let out = tape.no_grad(|| tape.custom(fma.clone(), &[a, a, a]));
    assert!(!out.requires_grad() && out.op().is_none());
    assert_eq!(fma.seen(), vec![(true, vec![false; 3])]);
}

#[test]
fn a_gradient_of_the_wrong_shape_panics_naming_the_op_input_and_shapes() {
    let tape = Tape::<f64>::new();
    let x = tape.var([1.0, 2.0, 3.0]);
    let y = tape.custom(BadShape, &[x]).sum();
    for message in [
        panic_message(|| {
            y.backward();
        }),
        panic_message(|| {
            y.grad(&[x]);
        }),
    ] {
        assert!(message.contains("`bad_shape`"), "{message}");
        assert!(message.contains("input 0"), "{message}");
        assert!(message.contains("[1]") && message.contains("[3]"), "{message}");
    }
    // A first-order rule with a wrong shape, and one gradient too many for one input.
    let y = tape.custom_first_order(BadShapeFirstOrder, &[x]).sum();
    let message = panic_message(|| {
        y.backward();
    });
    assert!(message.contains("`bad_shape_first_order`"), "{message}");
    assert!(message.contains("2 gradients for 1 inputs"), "{message}");
    let z = tape.var(2.0);
    let y = tape.custom_first_order(BadShapeFirstOrder, &[x, z]).sum();
    let message = panic_message(|| {
        y.backward();
    });
    assert!(
        message.contains("shape [1] for input 0, which has shape [3]"),
        "{message}"
    );
}

#[test]
fn bad_applications_panic_naming_the_op() {
    let (tape, other) = (Tape::<f64>::new(), Tape::<f64>::new());
    let (x, y) = (tape.var(1.0), other.var(2.0));
    let message = panic_message(|| {
        tape.custom(Fma::new(false), &[x, y, x]);
    });
    assert!(
        message.contains("`fma`") && message.contains("input 1"),
        "{message}"
    );
    let message = panic_message(|| {
        tape.custom(Log1mExp, &[]);
    });
    assert!(message.contains("`log1mexp`"), "{message}");
    // Asking the context for an input the op does not have.
    struct Greedy;
    impl CustomOp<f64> for Greedy {
        fn name(&self) -> &'static str {
            "greedy"
        }
        fn forward(&self, xs: &[&Tensor<f64>], _ctx: &mut ForwardCtx<f64>) -> Tensor<f64> {
            xs[0].clone()
        }
        fn backward<'t>(&self, ctx: &VarCtx<'_, 't, f64>) -> Vec<Option<Var<'t, f64>>> {
            vec![Some(ctx.grad_output() * ctx.input(1)), Some(ctx.saved(0))]
        }
    }
    let message = panic_message(|| {
        tape.custom(Greedy, &[x]).backward();
    });
    assert!(
        message.contains("`greedy`") && message.contains("input 1"),
        "{message}"
    );
}

// ---- names ------------------------------------------------------------------------------------

#[test]
fn the_name_shows_in_var_op_pictures_and_traces() {
    let tape = Tape::<f64>::new();
    let x = tape.var_named("x", [0.5, 2.0]);
    let y = tape.custom(Log1mExp, &[x]);
    let s = tape.custom_first_order(FusedSoftplus, &[y]);
    let loss = s.sum();
    assert_eq!((y.op(), s.op()), (Some("log1mexp"), Some("fused_softplus")));
    assert_eq!(y.op_rule(), Some("d/dx log(1 - e^-x) = e^(-x - y)"));
    assert_eq!(
        tape.vars().filter_map(|v| v.op()).collect::<Vec<_>>(),
        ["log1mexp", "fused_softplus", "sum"]
    );
    let (grads, trace) = loss.backward_traced();
    let picture = Dot::new(&tape).gradients(&grads).render();
    assert!(
        picture.contains("log1mexp") && picture.contains("fused_softplus"),
        "{picture}"
    );
    assert!(!picture.contains("custom"), "{picture}");
    let steps: Vec<_> = trace.steps().iter().filter_map(|s| s.op).collect();
    assert_eq!(steps, ["sum", "fused_softplus", "log1mexp"]);
    let step = trace.steps().iter().find(|s| s.op == Some("log1mexp")).unwrap();
    assert_eq!(step.contributions.len(), 1);
    assert_eq!(step.contributions[0].added, grads[x]);
    // The gradient node a first-order op records in a recorded backward says whose it is.
    let g = loss.grad(&[y])[0];
    assert_eq!(g.op(), Some("custom_gradient"));
    assert!(Dot::new(&tape).render().contains("gradient of fused_softplus"));
}

// ---- training ---------------------------------------------------------------------------------

/// A 2-16-1 network with a softplus between the layers, trained with Adam on a smooth target;
/// the softplus is `activation`. Returns the losses.
fn train(activation: for<'t> fn(&'t Tape<f64>, Var<'t, f64>) -> Var<'t, f64>) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    let (l1, l2) = (
        Linear::<f64>::new(2, 16, &mut rng),
        Linear::<f64>::new(16, 1, &mut rng),
    );
    let x = Tensor::<f64>::randn(&[32, 2], &mut rng);
    let target = Tensor::from_fn(&[32, 1], |i| {
        (x.as_slice()[2 * i] * 1.5).sin() + x.as_slice()[2 * i + 1].powi(2)
    });
    let mut params = l1.parameters();
    params.extend(l2.parameters());
    let mut opt = Adam::new(
        params,
        AdamConfig {
            lr: 0.02,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut losses = Vec::new();
    for _ in 0..150 {
        tape.reset();
        let h = activation(&tape, l1.forward(&tape, tape.constant(x.clone())));
        let l = loss::mse(l2.forward(&tape, h), tape.constant(target.clone()));
        losses.push(l.item());
        let grads = l.backward();
        opt.step(&grads);
    }
    losses
}

#[test]
fn a_network_with_custom_activations_trains_like_the_builtin_one() {
    let builtin = train(|_, h| h.softplus());
    let var_rule = train(|tape, h| tape.custom(SoftplusVar, &[h]));
    let first_order = train(|tape, h| tape.custom_first_order(FusedSoftplus, &[h]));
    assert!(
        builtin[149] < 0.2 * builtin[0],
        "the loss did not decrease: {} -> {}",
        builtin[0],
        builtin[149]
    );
    for (i, ((b, v), f)) in builtin.iter().zip(&var_rule).zip(&first_order).enumerate() {
        assert!((b - v).abs() <= 1e-9 * b, "step {i}: built-in {b}, CustomOp {v}");
        assert!(
            (b - f).abs() <= 1e-9 * b,
            "step {i}: built-in {b}, FirstOrderOp {f}"
        );
    }
}

#[test]
fn a_tape_with_custom_ops_moves_to_another_thread() {
    fn assert_send<S: Send>(s: S) -> S {
        s
    }
    let tape = assert_send(Tape::<f32>::new());
    let grad = std::thread::spawn(move || {
        let x = tape.var([0.5f32, 3.0]);
        let y = tape.custom(Log1mExp, &[x]).sum();
        y.backward()[x].to_vec()
    })
    .join()
    .unwrap();
    assert!((grad[0] - 1.0 / 0.5f32.exp_m1()).abs() < 1e-5);
}

// ---- property tests ---------------------------------------------------------------------------

fn shaped_values(lo: f64, hi: f64) -> impl Strategy<Value = Tensor<f64>> {
    proptest::collection::vec(1usize..4, 0..3).prop_flat_map(move |shape| {
        let n = shape.iter().product::<usize>();
        proptest::collection::vec(lo..hi, n).prop_map(move |v| Tensor::from_vec(v, &shape))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// log1mexp against finite differences to second order, over shapes of rank 0 to 2 and
    /// values on both sides of ln 2 (away from 0, where its derivatives blow up).
    #[test]
    fn log1mexp_gradchecks_over_random_shapes_and_values(x in shaped_values(0.05, 4.0)) {
        let result = gradcheck::check_custom_op(Log1mExp, &[x]);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    /// The fused softplus's first-order rule and the three-input op, likewise.
    #[test]
    fn softplus_and_fma_gradcheck_over_random_values(x in shaped_values(-5.0, 5.0)) {
        let result = gradcheck::check_first_order_op(FusedSoftplus, std::slice::from_ref(&x));
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        let (y, z) = (x.map(|v| 0.5 - v), x.map(|v| v * v));
        let result = gradcheck::check_custom_op(Fma::new(false), &[x, y, z]);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
