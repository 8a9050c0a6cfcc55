//! Activation functions (log1p, expm1, square, rsqrt, silu, gelu, gelu_tanh, softplus,
//! leaky_relu, elu) and clamping (clamp, maximum, minimum).
//!
//! Every op gets a proptest over random shapes (rank 0 to 3, size-1 and empty axes, broadcast
//! pairs for maximum and minimum) checking first- and second-order gradients against finite
//! differences in f64, and the same function on an f32 tape, whose values and gradients must be
//! finite and close to the f64 ones. Domains keep away from kinks (0 for leaky_relu and elu,
//! softplus's threshold 20, clamp's bounds, ties of maximum and minimum). Then: exact values
//! against PyTorch's, extreme inputs in f32, the tie and bound gradients, second derivatives at
//! the kinks, and the error messages.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::{Float, Tape, Tensor, Var, gradcheck};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Gives a closure the higher-ranked signature of a function under test.
fn op<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Runs `f` forward and backward (seeded with ones): the output and every input's gradient.
fn run<T: Float, F>(f: &F, inputs: &[Tensor<T>]) -> (Tensor<T>, Vec<Tensor<T>>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let xs: Vec<Var<T>> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&tape, &xs);
    let out = y.value();
    let grads = y.backward_with_seed(Tensor::ones(out.shape()));
    let gs = xs
        .iter()
        .zip(inputs)
        .map(|(x, t)| grads.wrt(*x).cloned().unwrap_or_else(|| Tensor::zeros(t.shape())))
        .collect();
    (out, gs)
}

/// `|a - b| <= 1e-3 (1 + |b|)` elementwise with equal shapes, `a` finite: f32 against f64.
fn assert_close(what: &str, a: &Tensor<f32>, b: &Tensor<f64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: f32 and f64 shapes differ", what);
    for (i, (&x, &y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        let x = f64::from(x);
        prop_assert!(x.is_finite(), "{}: element {} is {} in f32", what, i, x);
        prop_assert!(
            (x - y).abs() <= 1e-3 * (1.0 + y.abs()),
            "{}: element {} is {} in f32 but {} in f64",
            what,
            i,
            x,
            y
        );
    }
    Ok(())
}

/// The three checks of one op on one case: first and second order in f64, then f32 against f64.
fn check_op<F64, F32>(f64_fn: F64, f32_fn: F32, inputs: &[Tensor<f64>]) -> Result<(), TestCaseError>
where
    F64: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    F32: for<'t> Fn(&'t Tape<f32>, &[Var<'t, f32>]) -> Var<'t, f32>,
{
    gradcheck::check(&f64_fn, inputs).map_err(fail)?;
    gradcheck::check_second_order(&f64_fn, inputs).map_err(fail)?;
    let (want, want_grads) = run(&f64_fn, inputs);
    let inputs32: Vec<Tensor<f32>> = inputs.iter().map(|t| t.cast()).collect();
    let (got, got_grads) = run(&f32_fn, &inputs32);
    assert_close("value", &got, &want)?;
    for (i, (g, w)) in got_grads.iter().zip(&want_grads).enumerate() {
        assert_close(&format!("gradient {i}"), g, w)?;
    }
    Ok(())
}

/// Random shapes: rank 0 to 3, axes of 0 to 4 (so size-1 and empty axes occur).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    vec(0usize..=4, 0..=3)
}

/// A tensor of a random shape whose elements are `map(u)` for `u` uniform in [0, 1).
fn tensor(map: fn(f64) -> f64) -> impl Strategy<Value = Tensor<f64>> {
    shape().prop_flat_map(move |s| {
        let n = s.iter().product::<usize>();
        vec(0.0..1.0f64, n).prop_map(move |u| Tensor::from_vec(u.into_iter().map(map).collect(), &s))
    })
}

/// Values in `(-3, -0.1) ∪ (0.1, 3)`: away from the kink at 0.
fn away_from_zero(u: f64) -> f64 {
    let v = 0.1 + 5.8 * u;
    if v < 3.0 { -v } else { v - 2.9 }
}

/// Two broadcastable shapes: the second is the first with some axes set to 1 and possibly
/// fewer leading axes (either may be the larger one).
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape(), vec(any::<bool>(), 3), 0usize..=3, any::<bool>()).prop_map(|(a, ones, drop, swap)| {
        let b: Vec<usize> = a
            .iter()
            .zip(&ones)
            .map(|(&d, &one)| if one { 1 } else { d })
            .skip(drop.min(a.len()))
            .collect();
        if swap { (b, a) } else { (a, b) }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn log1p(x in tensor(|u| -0.9 + 4.0 * u)) {
        check_op(op(|_, v| v[0].log1p()), op(|_, v| v[0].log1p()), &[x])?;
    }

    #[test]
    fn expm1(x in tensor(|u| -3.0 + 6.0 * u)) {
        check_op(op(|_, v| v[0].expm1()), op(|_, v| v[0].expm1()), &[x])?;
    }

    #[test]
    fn square(x in tensor(|u| -3.0 + 6.0 * u)) {
        // Times x, so that the third derivative is not 0 either.
        check_op(op(|_, v| v[0].square() * v[0]), op(|_, v| v[0].square() * v[0]), &[x])?;
    }

    #[test]
    fn rsqrt(x in tensor(|u| 0.2 + 3.0 * u)) {
        check_op(op(|_, v| v[0].rsqrt()), op(|_, v| v[0].rsqrt()), &[x])?;
    }

    #[test]
    fn silu(x in tensor(|u| -6.0 + 12.0 * u)) {
        check_op(op(|_, v| v[0].silu()), op(|_, v| v[0].silu()), &[x])?;
    }

    #[test]
    fn gelu(x in tensor(|u| -6.0 + 12.0 * u)) {
        check_op(op(|_, v| v[0].gelu()), op(|_, v| v[0].gelu()), &[x])?;
    }

    #[test]
    fn gelu_tanh(x in tensor(|u| -6.0 + 12.0 * u)) {
        check_op(op(|_, v| v[0].gelu_tanh()), op(|_, v| v[0].gelu_tanh()), &[x])?;
    }

    #[test]
    fn softplus(x in tensor(|u| if u < 0.8 { -8.0 + 15.0 * u } else { 21.0 + 10.0 * (u - 0.8) })) {
        // Above the threshold 20 softplus is x: squared, so the second order is not trivial.
        check_op(
            op(|_, v| v[0].softplus().square()),
            op(|_, v| v[0].softplus().square()),
            &[x],
        )?;
    }

    #[test]
    fn leaky_relu(x in tensor(away_from_zero), slope in 0.01..0.5f64) {
        // Times x: leaky_relu is piecewise linear.
        check_op(
            op(move |_, v| v[0].leaky_relu(slope) * v[0]),
            op(move |_, v| v[0].leaky_relu(slope as f32) * v[0]),
            &[x],
        )?;
    }

    #[test]
    fn elu(x in tensor(away_from_zero), alpha in 0.3..2.0f64) {
        check_op(
            op(move |_, v| v[0].elu(alpha)),
            op(move |_, v| v[0].elu(alpha as f32)),
            &[x],
        )?;
    }

    #[test]
    fn clamp(
        // Fractional parts in [0.1, 0.4] and integer bounds: every element stays 0.1 from both.
        x in tensor(|u| (u * 8.0).floor() - 4.0 + 0.1 + 0.3 * (u * 8.0).fract()),
        lo in -4i32..=3,
        width in 0i32..=4,
        open in 0usize..3,
    ) {
        let (lo, hi) = (lo as f64, (lo + width) as f64);
        let (lo, hi) = match open {
            0 => (lo, hi),
            1 => (f64::NEG_INFINITY, hi),
            _ => (lo, f64::INFINITY),
        };
        // Cubed: clamp is piecewise linear.
        check_op(
            op(move |_, v| v[0].clamp(lo, hi).powi(3)),
            op(move |_, v| v[0].clamp(lo as f32, hi as f32).powi(3)),
            &[x],
        )?;
    }

    #[test]
    fn maximum_and_minimum((sa, sb) in broadcast_pair(), seed in vec(0.0..1.0f64, 64)) {
        // x has fractional parts in [0, 0.4], y in [0.5, 0.9]: never within 0.1 of each other.
        let value = |i: usize, offset: f64| {
            let u = seed[i % 64];
            (u * 6.0).floor() - 3.0 + offset + 0.4 * (u * 6.0).fract()
        };
        let x = Tensor::from_fn(&sa, |i| value(i, 0.0));
        let y = Tensor::from_fn(&sb, |i| value(i + 17, 0.5));
        let inputs = [x, y];
        check_op(
            op(|_, v| v[0].maximum(v[1]).powi(3)),
            op(|_, v| v[0].maximum(v[1]).powi(3)),
            &inputs,
        )?;
        check_op(
            op(|_, v| v[0].minimum(v[1]).powi(3)),
            op(|_, v| v[0].minimum(v[1]).powi(3)),
            &inputs,
        )?;
    }
}

// ---------------------------------------------------------------------------------------------
// Values against PyTorch
// ---------------------------------------------------------------------------------------------

/// Each function at a few points: PyTorch's value (what torch gives in float64, here from
/// 30-digit mpmath), first and second derivative.
#[test]
fn values_and_derivatives_match_pytorch() {
    type Fun = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
    let table: [(&str, Fun, f64, [f64; 3]); 10] = [
        (
            "silu",
            |x| x.silu(),
            -2.0,
            [-0.23840584404423512, -0.09078424878489548, 0.05006216869470691],
        ),
        (
            "silu",
            |x| x.silu(),
            3.0,
            [2.8577223804672998, 1.0881041060151697, -0.032321404521006174],
        ),
        (
            "gelu",
            |x| x.gelu(),
            0.5,
            [0.34573123063700656, 0.8674951246561629, 0.6161143218375241],
        ),
        (
            "gelu",
            |x| x.gelu(),
            -1.0,
            [-0.15865525393145705, -0.0833154705876863, 0.24197072451914334],
        ),
        (
            "gelu_tanh",
            |x| x.gelu_tanh(),
            -0.5,
            [-0.15428599017485609, 0.1326300964653577, 0.6155068951159849],
        ),
        (
            "gelu_tanh",
            |x| x.gelu_tanh(),
            2.0,
            [1.954597694087775, 1.0860992566236183, -0.10787507995107845],
        ),
        (
            "softplus",
            |x| x.softplus(),
            -3.0,
            [0.04858735157374206, 0.04742587317756678, 0.04517665973091213],
        ),
        (
            "softplus",
            |x| x.softplus(),
            1.0,
            [1.3132616875182228, 0.7310585786300049, 0.19661193324148185],
        ),
        (
            "softplus",
            |x| x.softplus(),
            20.0,
            [20.000000002061153, 0.9999999979388464, 2.061153613941849e-09],
        ),
        (
            "elu",
            |x| x.elu(1.5),
            -2.0,
            [-1.296997075145081, 0.20300292485491903, 0.20300292485491903],
        ),
    ];
    for (name, f, x0, want) in table {
        let tape = Tape::<f64>::new();
        let x = tape.var(x0);
        let y = f(x);
        let dy = y.grad(&[x])[0];
        let ddy = dy.grad(&[x])[0];
        for (k, (got, want)) in [y.item(), dy.item(), ddy.item()]
            .into_iter()
            .zip(want)
            .enumerate()
        {
            assert!(
                (got - want).abs() <= 1e-14 * want.abs(),
                "{name}({x0}), derivative {k}: {got:e}, want {want:e}"
            );
        }
    }
    // Simple closed forms, exactly.
    let tape = Tape::<f64>::new();
    let x = tape.var([0.25, 4.0]);
    assert_eq!(x.rsqrt().value().to_vec(), vec![2.0, 0.5]);
    assert_eq!(x.square().value().to_vec(), vec![0.0625, 16.0]);
    let x = tape.var([-0.5, 1e-5]);
    assert_eq!(
        x.log1p().value().to_vec(),
        vec![-std::f64::consts::LN_2, 1e-5f64.ln_1p()]
    );
    assert!((x.expm1().value().to_vec()[1] - 1.0000050000166667e-05).abs() < 1e-20);
    let x = tape.var([-2.0, 0.0, 3.0]);
    assert_eq!(x.leaky_relu(0.01).value().to_vec(), vec![-0.02, 0.0, 3.0]);
    // Above the threshold softplus is x and its slope 1; PyTorch's f32 gives 20 at 20.
    let t32 = Tape::<f32>::new();
    let x = t32.var([20.0, 20.5, 100.0]);
    let y = x.softplus();
    assert_eq!(y.value().to_vec(), vec![20.0, 20.5, 100.0]);
    assert_eq!(y.sum().backward()[x].to_vec(), vec![1.0, 1.0, 1.0]);
}

/// At the kinks the first derivative takes PyTorch's side (slope and alpha at 0) and the second
/// derivative is 0 where the function is linear, as PyTorch's double backward gives.
#[test]
fn kinks_follow_pytorch_to_second_order() {
    let tape = Tape::<f64>::new();
    let x = tape.var([-1.0, 0.0, 2.0]);
    let d = x.leaky_relu(0.2).sum().grad(&[x])[0];
    assert_eq!(d.value().to_vec(), vec![0.2, 0.2, 1.0]);
    assert_eq!(d.sum().grad(&[x])[0].value().to_vec(), vec![0.0, 0.0, 0.0]);
    let d = x.elu(2.0).sum().grad(&[x])[0];
    assert_eq!(d.value().to_vec(), vec![2.0 * (-1f64).exp(), 2.0, 1.0]);
    let dd = d.sum().grad(&[x])[0];
    assert_eq!(dd.value().to_vec(), vec![2.0 * (-1f64).exp(), 2.0, 0.0]);
    let ddd = dd.sum().grad(&[x])[0];
    assert_eq!(ddd.value().to_vec(), vec![2.0 * (-1f64).exp(), 2.0, 0.0]);
    let x = tape.var([25.0, 0.0]);
    let d = x.softplus().sum().grad(&[x])[0];
    assert_eq!(d.value().to_vec(), vec![1.0, 0.5]);
    assert_eq!(d.sum().grad(&[x])[0].value().to_vec(), vec![0.0, 0.25]);
    // Square's third derivative is 0, its second 2.
    let x = tape.var(3.0);
    let d = x.square().grad(&[x])[0];
    let dd = d.grad(&[x])[0];
    assert_eq!((d.item(), dd.item(), dd.grad(&[x])[0].item()), (6.0, 2.0, 0.0));
}

/// Rank-0 vars take the scalar paths forward and backward, also for ops with a parameter.
#[test]
fn rank0_matches_rank1() {
    type Fun = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
    let funs: [Fun; 13] = [
        |x| x.log1p(),
        |x| x.expm1(),
        |x| x.square(),
        |x| x.rsqrt(),
        |x| x.silu(),
        |x| x.gelu(),
        |x| x.gelu_tanh(),
        |x| x.softplus(),
        |x| x.leaky_relu(0.3),
        |x| x.elu(0.7),
        |x| x.clamp(0.0, 0.5),
        |x| x.maximum(x * 0.5 + 0.1),
        |x| x.minimum(x * 0.5 + 0.1),
    ];
    for (i, f) in funs.iter().enumerate() {
        for x0 in [0.3, 0.9] {
            let derivatives = |x: Var<'_, f64>, y: Var<'_, f64>| {
                let d = y.sum().grad(&[x])[0];
                let dd = d.sum().grad(&[x])[0];
                (
                    y.value().sum().item(),
                    d.value().sum().item(),
                    dd.value().sum().item(),
                )
            };
            let tape = Tape::<f64>::new();
            let x = tape.var(x0);
            let scalar = derivatives(x, f(x));
            let x = tape.var(Tensor::from_vec(vec![x0], &[1]));
            let tensor = derivatives(x, f(x));
            assert_eq!(scalar, tensor, "function {i} at {x0}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Extreme inputs in f32
// ---------------------------------------------------------------------------------------------

/// Values and gradients in f32 at ±100 and ±10⁴ (and other extremes): finite, and equal to the
/// f64 ones (of the same inputs) within f32's precision.
#[test]
fn f32_is_finite_and_close_to_f64_at_extreme_inputs() {
    type F32 = for<'t> fn(Var<'t, f32>) -> Var<'t, f32>;
    type F64 = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
    let wide = vec![-1e4, -100.0, -30.0, -5.0, -1e-6, 0.0, 1e-6, 5.0, 30.0, 100.0, 1e4];
    let cases: [(&str, F32, F64, Vec<f64>); 6] = [
        ("softplus", |x| x.softplus(), |x| x.softplus(), wide.clone()),
        ("gelu", |x| x.gelu(), |x| x.gelu(), wide.clone()),
        ("gelu_tanh", |x| x.gelu_tanh(), |x| x.gelu_tanh(), wide.clone()),
        ("silu", |x| x.silu(), |x| x.silu(), wide),
        (
            "log1p",
            |x| x.log1p(),
            |x| x.log1p(),
            vec![-0.999, -1e-7, 0.0, 1e-7, 100.0, 1e4, 1e30],
        ),
        (
            "expm1",
            |x| x.expm1(),
            |x| x.expm1(),
            vec![-1e4, -100.0, -1e-7, 0.0, 1e-7, 30.0, 80.0],
        ),
    ];
    for (name, f32_fn, f64_fn, points) in cases {
        // Both runs take the same (f32) inputs.
        let points: Vec<f64> = points.iter().map(|&p| f64::from(p as f32)).collect();
        let t32 = Tape::<f32>::new();
        let x32 = t32.var(Tensor::from_vec(
            points.iter().map(|&p| p as f32).collect(),
            &[points.len()],
        ));
        let y32 = f32_fn(x32);
        let g32 = y32.sum().backward()[x32].to_vec();
        let t64 = Tape::<f64>::new();
        let x64 = t64.var(Tensor::from_vec(points.clone(), &[points.len()]));
        let y64 = f64_fn(x64);
        let g64 = y64.sum().backward()[x64].to_vec();
        let pairs = y32
            .value()
            .to_vec()
            .into_iter()
            .zip(y64.value().to_vec())
            .zip(g32.into_iter().zip(g64));
        for (i, ((v32, v64), (d32, d64))) in pairs.enumerate() {
            let x = points[i];
            for (what, a, b) in [("value", v32, v64), ("gradient", d32, d64)] {
                let a = f64::from(a);
                assert!(a.is_finite(), "{name}({x}): {what} {a} in f32");
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs() + 1e-30,
                    "{name}({x}): {what} {a:e} in f32, {b:e} in f64"
                );
            }
        }
    }
    // The limits, exactly.
    let t = Tape::<f32>::new();
    let x = t.var([-1e4, 1e4]);
    for y in [x.softplus(), x.gelu(), x.gelu_tanh(), x.silu()] {
        assert_eq!(y.value().to_vec(), vec![0.0, 1e4]);
    }
}

// ---------------------------------------------------------------------------------------------
// Clamp, maximum and minimum
// ---------------------------------------------------------------------------------------------

#[test]
fn clamp_passes_the_gradient_at_the_bounds_and_propagates_nan() {
    let tape = Tape::<f64>::new();
    let x = tape.var([-2.0, -1.0, 0.0, 1.0, 2.0, f64::NAN]);
    let y = x.clamp(-1.0, 1.0);
    let v = y.value().to_vec();
    assert_eq!(&v[..5], &[-1.0, -1.0, 0.0, 1.0, 1.0]);
    assert!(v[5].is_nan());
    let g = y.sum().backward()[x].to_vec();
    assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    // Open sides and a single point.
    let x = tape.var([-1e30, 3.0]);
    assert_eq!(x.clamp(f64::NEG_INFINITY, 2.0).value().to_vec(), vec![-1e30, 2.0]);
    assert_eq!(x.clamp(0.0, f64::INFINITY).value().to_vec(), vec![0.0, 3.0]);
    assert_eq!(x.clamp(3.0, 3.0).sum().backward()[x].to_vec(), vec![0.0, 1.0]);
    // f32 with f32's infinities.
    let t32 = Tape::<f32>::new();
    let x = t32.var([-5.0, 5.0]);
    assert_eq!(x.clamp(f32::NEG_INFINITY, 0.0).value().to_vec(), vec![-5.0, 0.0]);
}

#[test]
fn ties_of_maximum_and_minimum_split_the_gradient_in_half() {
    let tape = Tape::<f64>::new();
    let x = tape.var([1.0, 2.0, 3.0]);
    let y = tape.var([1.0, 5.0, 3.0]);
    for (m, gx, gy) in [
        (x.maximum(y), vec![0.5, 0.0, 0.5], vec![0.5, 1.0, 0.5]),
        (x.minimum(y), vec![0.5, 1.0, 0.5], vec![0.5, 0.0, 0.5]),
    ] {
        let g = m.sum().backward();
        assert_eq!(g[x].to_vec(), gx);
        assert_eq!(g[y].to_vec(), gy);
    }
    // With itself: the two halves add up to 1.
    assert_eq!(x.maximum(x).sum().backward()[x].to_vec(), vec![1.0; 3]);
    // Broadcast: a scalar tied with two elements gets half of each.
    let s = tape.var(2.0);
    let x = tape.var([2.0, 2.0, 0.0]);
    let g = x.minimum(s).sum().backward();
    assert_eq!(g[x].to_vec(), vec![0.5, 0.5, 1.0]);
    assert_eq!(g[s].item(), 1.0);
    // NaN propagates in the value (on either side) and gets no gradient.
    let a = tape.var([f64::NAN, 1.0]);
    let b = tape.var([0.0, f64::NAN]);
    for m in [a.maximum(b), a.minimum(b), b.maximum(a)] {
        assert!(m.value().to_vec().iter().all(|v| v.is_nan()));
    }
    let g = a.maximum(b).sum().backward();
    assert_eq!((g[a].to_vec(), g[b].to_vec()), (vec![0.0, 0.0], vec![0.0, 0.0]));
}

// ---------------------------------------------------------------------------------------------
// Error messages
// ---------------------------------------------------------------------------------------------

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn errors_name_the_op_and_the_arguments() {
    let message = panic_message(|| {
        let tape = Tape::<f64>::new();
        tape.var([1.0]).clamp(2.0, 1.0);
    });
    assert!(
        message.contains("tapegrad: clamp: min 2 is greater than max 1"),
        "{message}"
    );
    let message = panic_message(|| {
        let tape = Tape::<f64>::new();
        tape.var([1.0]).clamp(f64::NAN, 1.0);
    });
    assert!(
        message.contains("tapegrad: clamp: the bounds must not be NaN"),
        "{message}"
    );
    let message = panic_message(|| {
        let tape = Tape::<f32>::new();
        tape.var([1.0]).clamp(0.0, f32::NAN);
    });
    assert!(
        message.contains("tapegrad: clamp: the bounds must not be NaN"),
        "{message}"
    );
    for name in ["maximum", "minimum"] {
        let message = panic_message(|| {
            let tape = Tape::<f64>::new();
            let (x, y) = (tape.var([1.0, 2.0, 3.0]), tape.var([1.0, 2.0]));
            if name == "maximum" {
                x.maximum(y)
            } else {
                x.minimum(y)
            };
        });
        assert!(
            message.contains(&format!(
                "tapegrad: {name}: shapes [3] and [2] cannot be broadcast"
            )),
            "{message}"
        );
    }
}

#[test]
#[should_panic(expected = "maximum")]
fn maximum_of_vars_on_different_tapes_panics() {
    let (a, b) = (Tape::<f64>::new(), Tape::<f64>::new());
    a.var([1.0]).maximum(b.var([2.0]));
}
