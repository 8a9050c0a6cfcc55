//! The reductions of issue 14: min_axis, logsumexp, cumsum, var_axis, std_axis, sum_axes and
//! mean_axes.
//!
//! For every op: first- and second-order gradient checks in `f64` over random shapes (rank 1 to
//! 3, size-1 axes), axes and `keepdim`; the same function on a `Tape<f32>`, finite and close to
//! `f64`; exact values where PyTorch's are known; edge cases (empty axes, ±inf, ±1000, rank 0);
//! and the panic messages. Ops linear in their input are cubed for the second-order check, so
//! that the rule's own rule is exercised.

use std::ops::Range;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::{Float, Tape, Tensor, Var, gradcheck};

const MAX_DIM: usize = 4;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

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

/// First- and second-order gradient checks of `f` at `x`.
fn check_both<F>(f: F, x: &Tensor<f64>) -> Result<(), TestCaseError>
where
    F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    gradcheck::check(&f, std::slice::from_ref(x)).map_err(fail)?;
    gradcheck::check_second_order(&f, std::slice::from_ref(x)).map_err(fail)
}

/// Fixed weights in [0.5, 1.5) for seeding the backward pass of a non-scalar output.
fn seed<T: Float>(shape: &[usize]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(0.5 + ((i * 37 + 11) % 17) as f64 / 17.0))
}

/// The output of `f` at `x` and the gradient of `x`, seeded with [`seed`].
fn run<T: Float, F>(f: &F, x: &Tensor<T>) -> (Tensor<T>, Tensor<T>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let y = f(&tape, &[xv]);
    let out = y.value();
    let grads = y.backward_with_seed(seed(out.shape()));
    let g = grads.wrt(xv).cloned().unwrap_or_else(|| Tensor::zeros(x.shape()));
    (out, g)
}

/// `|a - b| <= 1e-3 + 1e-3 |b|` elementwise, with equal shapes.
fn assert_close(what: &str, a: &Tensor<f32>, b: &Tensor<f64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape(), "{}: f32 and f64 shapes differ", what);
    for (i, (&x, &y)) in a.as_slice().iter().zip(b.as_slice()).enumerate() {
        let x = f64::from(x);
        prop_assert!(
            (x - y).abs() <= 1e-3 + 1e-3 * y.abs(),
            "{}: element {} is {} in f32 but {} in f64",
            what,
            i,
            x,
            y
        );
    }
    Ok(())
}

/// The op in `f32` and `f64`: finite `f32` output and gradient, of the right shapes, close to
/// `f64`.
fn check_f32<F64, F32>(f64f: F64, f32f: F32, x: &Tensor<f64>) -> Result<(), TestCaseError>
where
    F64: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    F32: for<'t> Fn(&'t Tape<f32>, &[Var<'t, f32>]) -> Var<'t, f32>,
{
    let (y64, g64) = run(&f64f, x);
    let (y32, g32) = run(&f32f, &x.cast::<f32>());
    prop_assert!(y32.all_finite(), "f32 output is not finite: {:?}", y32);
    prop_assert!(g32.all_finite(), "f32 gradient is not finite: {:?}", g32);
    prop_assert_eq!(g32.shape(), x.shape());
    prop_assert_eq!(g64.shape(), x.shape());
    assert_close("output", &y32, &y64)?;
    assert_close("gradient", &g32, &g64)
}

/// Runs `f` and returns its panic message.
fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Shapes of rank 1..=3 with dimensions in `dims`.
fn shape(dims: Range<usize>) -> impl Strategy<Value = Vec<usize>> {
    (1..=3usize).prop_flat_map(move |rank| vec(dims.clone(), rank))
}

fn tensor(shape: Vec<usize>, range: Range<f64>) -> BoxedStrategy<Tensor<f64>> {
    let n: usize = shape.iter().product();
    vec(range, n)
        .prop_map(move |v| Tensor::from_vec(v, &shape))
        .boxed()
}

/// Values 0.3 apart in a random order with a jitter below 0.1 (no two closer than 0.1): away from
/// the ties where min's gradient jumps, and from std's zero.
fn distinct(shape: Vec<usize>) -> BoxedStrategy<Tensor<f64>> {
    let n: usize = shape.iter().product();
    (
        Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
        vec(-0.1..0.1, n),
    )
        .prop_map(move |(order, jitter)| {
            let data = order
                .iter()
                .zip(jitter)
                .map(|(&k, j)| (k as f64 - n as f64 / 2.0) * 0.3 + j)
                .collect();
            Tensor::from_vec(data, &shape)
        })
        .boxed()
}

/// A tensor from `values`, an axis of it and a `keepdim` flag.
fn with_axis(
    dims: Range<usize>,
    values: impl Fn(Vec<usize>) -> BoxedStrategy<Tensor<f64>> + 'static,
) -> impl Strategy<Value = (Tensor<f64>, usize, bool)> {
    shape(dims).prop_flat_map(move |s| {
        let rank = s.len();
        (values(s), 0..rank, any::<bool>())
    })
}

/// Distinct values, an axis of length at least 2, a correction (0 or 1) below that length, and
/// `keepdim`.
fn var_case() -> impl Strategy<Value = (Tensor<f64>, usize, usize, bool)> {
    (
        shape(1..MAX_DIM + 1),
        any::<prop::sample::Index>(),
        0..=1usize,
        any::<bool>(),
    )
        .prop_flat_map(|(mut s, axis, correction, keepdim)| {
            let axis = axis.index(s.len());
            s[axis] = s[axis].max(2);
            (distinct(s), Just(axis), Just(correction), Just(keepdim))
        })
}

/// A tensor, a list of distinct axes in a random order (possibly empty), and `keepdim`.
fn axes_case(dims: Range<usize>) -> impl Strategy<Value = (Tensor<f64>, Vec<usize>, bool)> {
    shape(dims).prop_flat_map(|s| {
        let rank = s.len();
        (
            tensor(s, -1.5..1.5),
            Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
            0..=rank,
            any::<bool>(),
        )
            .prop_map(|(x, order, k, keepdim)| (x, order[..k].to_vec(), keepdim))
    })
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn min_axis_gradients((x, axis, keepdim) in with_axis(1..MAX_DIM + 1, distinct)) {
        check_both(op(|_, xs| xs[0].min_axis(axis, keepdim).powi(3)), &x)?;
        check_f32(
            op(|_, xs| xs[0].min_axis(axis, keepdim).powi(3)),
            op(|_, xs| xs[0].min_axis(axis, keepdim).powi(3)),
            &x,
        )?;
    }

    #[test]
    fn min_axis_is_minus_max_of_minus(
        (x, axis, keepdim) in with_axis(1..MAX_DIM + 1, |s| tensor(s, -3.0..3.0))
    ) {
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let min = v.min_axis(axis, keepdim);
        let via_max = -((-v).max_axis(axis, keepdim));
        prop_assert_eq!(min.value(), via_max.value());
        let (g1, g2) = (min.sum().backward(), via_max.sum().backward());
        prop_assert_eq!(&g1[v], &g2[v]);
    }

    #[test]
    fn logsumexp_gradients((x, axis, keepdim) in with_axis(1..MAX_DIM + 1, |s| tensor(s, -3.0..3.0))) {
        check_both(op(|_, xs| xs[0].logsumexp(axis, keepdim)), &x)?;
        // Composed with a nonlinear function of the output: the rule's grad_out is not constant.
        check_both(op(|_, xs| xs[0].logsumexp(axis, keepdim).powi(2) * 0.5), &x)?;
        check_f32(
            op(|_, xs| xs[0].logsumexp(axis, keepdim)),
            op(|_, xs| xs[0].logsumexp(axis, keepdim)),
            &x,
        )?;
    }

    #[test]
    fn logsumexp_matches_the_naive_formula_and_its_gradient_the_softmax(
        (x, axis, keepdim) in with_axis(1..MAX_DIM + 1, |s| tensor(s, -30.0..30.0))
    ) {
        let naive = x.exp().sum_axis(axis, keepdim).ln();
        let got = x.logsumexp(axis, keepdim);
        prop_assert_eq!(got.shape(), naive.shape());
        for (&a, &b) in got.as_slice().iter().zip(naive.as_slice()) {
            prop_assert!(close(a, b, 1e-14), "{} vs {}", a, b);
        }
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let g = v.logsumexp(axis, keepdim).sum().backward();
        let softmax = x.softmax(axis);
        for (&a, &b) in g[v].as_slice().iter().zip(softmax.as_slice()) {
            prop_assert!(close(a, b, 1e-14), "{} vs {}", a, b);
        }
    }

    #[test]
    fn cumsum_gradients((x, axis, _) in with_axis(1..MAX_DIM + 1, |s| tensor(s, -1.5..1.5))) {
        check_both(op(|_, xs| xs[0].cumsum(axis).powi(3)), &x)?;
        check_both(op(|_, xs| xs[0].cumsum(axis) * xs[0]), &x)?;
        check_f32(
            op(|_, xs| xs[0].cumsum(axis).powi(3)),
            op(|_, xs| xs[0].cumsum(axis).powi(3)),
            &x,
        )?;
    }

    #[test]
    fn cumsum_matches_running_sums((x, axis, _) in with_axis(0..MAX_DIM + 1, |s| tensor(s, -5.0..5.0))) {
        let got = x.cumsum(axis);
        prop_assert_eq!(got.shape(), x.shape());
        let n = x.shape()[axis];
        for k in 0..n {
            // Element k along the axis is the sum of the first k + 1 slices, in order.
            let mut want = x.narrow(axis, 0, 1);
            for j in 1..=k {
                want = &want + &x.narrow(axis, j, 1);
            }
            prop_assert_eq!(got.narrow(axis, k, 1), want);
        }
    }

    #[test]
    fn var_axis_gradients((x, axis, correction, keepdim) in var_case()) {
        check_both(op(|_, xs| xs[0].var_axis(axis, correction, keepdim)), &x)?;
        check_f32(
            op(|_, xs| xs[0].var_axis(axis, correction, keepdim)),
            op(|_, xs| xs[0].var_axis(axis, correction, keepdim)),
            &x,
        )?;
    }

    #[test]
    fn std_axis_gradients((x, axis, correction, keepdim) in var_case()) {
        check_both(op(|_, xs| xs[0].std_axis(axis, correction, keepdim)), &x)?;
        check_f32(
            op(|_, xs| xs[0].std_axis(axis, correction, keepdim)),
            op(|_, xs| xs[0].std_axis(axis, correction, keepdim)),
            &x,
        )?;
    }

    #[test]
    fn var_axis_matches_the_two_pass_formula((x, axis, correction, keepdim) in var_case()) {
        let n = x.shape()[axis];
        let mean = x.mean_axis(axis, true);
        let d = &x - &mean;
        let want = (&d * &d).sum_axis(axis, keepdim) / (n - correction) as f64;
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let var = v.var_axis(axis, correction, keepdim).value();
        let std = v.std_axis(axis, correction, keepdim).value();
        prop_assert_eq!(var.shape(), want.shape());
        for ((&a, &s), &b) in var.as_slice().iter().zip(std.as_slice()).zip(want.as_slice()) {
            prop_assert!(close(a, b, 1e-13), "{} vs {}", a, b);
            prop_assert!(close(s, b.sqrt(), 1e-13), "{} vs {}", s, b.sqrt());
        }
    }

    #[test]
    fn sum_axes_gradients((x, axes, keepdim) in axes_case(1..MAX_DIM + 1)) {
        check_both(op(|_, xs| xs[0].sum_axes(&axes, keepdim).powi(3)), &x)?;
        check_both(op(|_, xs| xs[0].mean_axes(&axes, keepdim).powi(3)), &x)?;
        check_f32(
            op(|_, xs| xs[0].sum_axes(&axes, keepdim).powi(3)),
            op(|_, xs| xs[0].sum_axes(&axes, keepdim).powi(3)),
            &x,
        )?;
        check_f32(
            op(|_, xs| xs[0].mean_axes(&axes, keepdim).powi(3)),
            op(|_, xs| xs[0].mean_axes(&axes, keepdim).powi(3)),
            &x,
        )?;
    }

    #[test]
    fn sum_axes_matches_sum_axis_one_at_a_time((x, axes, keepdim) in axes_case(0..MAX_DIM + 1)) {
        let rank = x.rank();
        let all: Vec<usize> = if axes.is_empty() { (0..rank).collect() } else { axes.clone() };
        let mut sorted = all.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let mut want = x.clone();
        for &a in &sorted {
            want = want.sum_axis(a, keepdim);
        }
        let count: usize = all.iter().map(|&a| x.shape()[a]).product();
        let tape = Tape::<f64>::new();
        let v = tape.var(x.clone());
        let sum = v.sum_axes(&axes, keepdim).value();
        let mean = v.mean_axes(&axes, keepdim).value();
        prop_assert_eq!(sum.shape(), want.shape());
        prop_assert_eq!(mean.shape(), want.shape());
        for ((&s, &m), &w) in sum.as_slice().iter().zip(mean.as_slice()).zip(want.as_slice()) {
            prop_assert!(close(s, w, 1e-13), "{} vs {}", s, w);
            if count == 0 {
                prop_assert!(m.is_nan(), "mean over no elements is {}", m);
            } else {
                prop_assert!(close(m, w / count as f64, 1e-13), "{} vs {}", m, w / count as f64);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values PyTorch gives
// ---------------------------------------------------------------------------------------------

#[test]
fn logsumexp_values_match_pytorch() {
    // torch.logsumexp(torch.tensor([[1., 2., 3.], [4., 5., 6.]], dtype=torch.float64), dim=1)
    let x = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    let want = 3.0 + (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
    let got = x.logsumexp(1, false).to_vec();
    assert!(
        close(got[0], want, 1e-15) && close(got[1], want + 3.0, 1e-15),
        "{got:?}"
    );
    assert_eq!(x.logsumexp(1, true).shape(), &[2, 1]);
    // dim=0: logsumexp(1, 4) = 4 + ln(1 + e^-3)
    let col = x.logsumexp(0, false).to_vec();
    assert!(
        close(col[0], 4.0 + (1.0 + (-3.0f64).exp()).ln(), 1e-15),
        "{col:?}"
    );

    let inf = f64::INFINITY;
    let lse = |v: Vec<f64>| Tensor::from_vec(v.clone(), &[v.len()]).logsumexp(0, false).item();
    assert_eq!(lse(vec![-inf, -inf]), -inf);
    assert_eq!(lse(vec![inf, 1.0]), inf);
    assert_eq!(lse(vec![inf, -inf]), inf);
    assert_eq!(lse(vec![-inf, 0.0]), 0.0);
    assert!(close(lse(vec![-inf, 0.0, 1.0]), (1.0 + 1f64.exp()).ln(), 1e-15));
    assert!(lse(vec![f64::NAN, 1.0]).is_nan());
    assert!(lse(vec![inf, f64::NAN]).is_nan());
    // An empty axis: ln 0.
    assert_eq!(lse(vec![]), -inf);
    let empty = Tensor::<f64>::zeros(&[2, 0, 3]).logsumexp(1, false);
    assert_eq!((empty.shape(), empty.to_vec()), (&[2, 3][..], vec![-inf; 6]));
    assert_eq!(Tensor::<f64>::zeros(&[0, 3]).logsumexp(1, false).shape(), &[0]);
}

#[test]
fn logsumexp_is_stable_at_plus_and_minus_1000_in_f32() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(
        vec![
            1000.,
            1000.,
            -1000.,
            -1000.,
            -1000.,
            -1000.,
            1000.,
            -1000.,
            f32::NEG_INFINITY,
        ],
        &[3, 3],
    ));
    let l = x.logsumexp(1, false);
    let v = l.value().to_vec();
    // torch.logsumexp(x, 1): [1000.6931, -998.9014, 1000.0000]
    assert_eq!(v[0], 1000.0 + 2f32.ln());
    assert!((v[1] - (-1000.0 + 3f32.ln())).abs() < 1e-3, "{v:?}");
    assert_eq!(v[2], 1000.0);
    let g = l.sum().backward()[x].to_vec();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    let third = 1.0 / 3.0;
    let want = [0.5, 0.5, 0.0, third, third, third, 1.0, 0.0, 0.0];
    // exp(x − out) with `out` rounded to f32 at 1000 (an ulp of 6e-5): PyTorch's f32 gradient
    // is as far from 1/2.
    assert!(g.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-4), "{g:?}");
}

#[test]
fn logsumexp_gradient_with_minus_infinity_entries() {
    let tape = Tape::<f64>::new();
    let ninf = f64::NEG_INFINITY;
    let x = tape.var(Tensor::from_vec(vec![ninf, 0.0, 0.0, ninf, ninf, ninf], &[2, 3]));
    let l = x.logsumexp(1, false);
    assert_eq!(l.value().to_vec(), vec![2f64.ln(), ninf]);
    // A lane with finite entries: −inf entries get 0. An all −inf lane: exp(−inf − (−inf)) is
    // NaN, as PyTorch's logsumexp_backward gives too.
    let g = l.sum().backward()[x].to_vec();
    assert_eq!(&g[..3], &[0.0, 0.5, 0.5]);
    assert!(g[3..].iter().all(|v| v.is_nan()), "{g:?}");
    // Masking the dead lane (as attention does) leaves finite gradients elsewhere.
    let x = tape.var(Tensor::from_vec(vec![ninf, 1.0, ninf, 1.0], &[2, 2]));
    let g = x.logsumexp(1, true).sum().backward()[x].to_vec();
    assert_eq!(g, vec![0.0, 1.0, 0.0, 1.0]);
}

#[test]
fn logsumexp_third_derivative_is_softplus_third_derivative() {
    // logsumexp([x, 0]) = softplus(x): d/dx = s, d²/dx² = s(1 − s), d³/dx³ = s(1 − s)(1 − 2s)
    // with s = sigmoid(x). The third derivative runs the gradient primitive's own rule.
    let tape = Tape::<f64>::new();
    let x = tape.var(0.7);
    let zero = tape.constant(Tensor::from_vec(vec![0.0], &[1]));
    let pair = Var::cat(&[x.reshape(&[1]), zero], 0);
    let f = pair.logsumexp(0, false);
    let d1 = f.grad(&[x])[0];
    let d2 = d1.grad(&[x])[0];
    let d3 = d2.grad(&[x])[0];
    let s = 1.0 / (1.0 + (-0.7f64).exp());
    assert!(close(f.item(), (1.0 + 0.7f64.exp()).ln(), 1e-15));
    assert!(close(d1.item(), s, 1e-15), "{}", d1.item());
    assert!(close(d2.item(), s * (1.0 - s), 1e-14), "{}", d2.item());
    assert!(
        close(d3.item(), s * (1.0 - s) * (1.0 - 2.0 * s), 1e-13),
        "{}",
        d3.item()
    );
}

#[test]
fn min_axis_values_and_gradients_match_pytorch() {
    let tape = Tape::<f64>::new();
    // torch.min(x, 0): values [1, 1, 0], indices [1, 0, 1]: ties send the gradient to the first.
    let x = tape.var(Tensor::from_vec(vec![2., 1., 5., 1., 1., 0.], &[2, 3]));
    let m = x.min_axis(0, false);
    assert_eq!(m.value().to_vec(), vec![1., 1., 0.]);
    assert_eq!(m.sum().backward()[x].to_vec(), vec![0., 1., 0., 1., 0., 1.]);
    let k = x.min_axis(1, true);
    assert_eq!((k.shape(), k.value().to_vec()), (vec![2, 1], vec![1., 0.]));
    // NaN propagates, and takes the gradient.
    let y = tape.var(Tensor::from_vec(vec![1., f64::NAN, -1.], &[3]));
    let n = y.min_axis(0, false);
    assert!(n.item().is_nan());
    assert_eq!(n.backward()[y].to_vec(), vec![0., 1., 0.]);
    // Another axis empty: an empty result (and gradient).
    let e = tape.var(Tensor::<f64>::zeros(&[3, 0]));
    assert_eq!(e.min_axis(0, false).shape(), vec![0]);
    assert_eq!(e.min_axis(0, true).shape(), vec![1, 0]);
    assert_eq!(e.min_axis(0, true).sum().backward()[e].shape(), &[3, 0]);
    // A size-1 axis passes the values and the gradient through.
    let z = tape.var(Tensor::from_vec(vec![3., -2.], &[2, 1]));
    let s = z.min_axis(1, false);
    assert_eq!(s.value().to_vec(), vec![3., -2.]);
    assert_eq!(s.sum().backward()[z].to_vec(), vec![1., 1.]);
}

#[test]
fn cumsum_values_match_pytorch() {
    let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4.], &[2, 2]);
    assert_eq!(t.cumsum(0).to_vec(), vec![1., 2., 4., 6.]);
    assert_eq!(t.cumsum(1).to_vec(), vec![1., 3., 3., 7.]);
    // PyTorch's CPU cumsum keeps f32 running sums in f64: ten 0.1f32 sum to exactly 1.0 (an f32
    // chain gives 1.0000001).
    let tenths = Tensor::<f32>::full(&[10], 0.1).cumsum(0).to_vec();
    let mut acc = 0.0f64;
    let want: Vec<f32> = (0..10)
        .map(|_| {
            acc += f64::from(0.1f32);
            acc as f32
        })
        .collect();
    assert_eq!(tenths, want);
    assert_eq!(tenths[9], 1.0);
    // The gradient is the reversed cumsum: d(Σ w · cumsum(x))/dx_k = Σ_{j ≥ k} w_j.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[3, 2]));
    let w = tape.constant(Tensor::from_vec(
        vec![1., 10., 100., 1000., 10000., 100000.],
        &[3, 2],
    ));
    let g = (x.cumsum(0) * w).sum().backward()[x].to_vec();
    assert_eq!(g, vec![10101., 101010., 10100., 101000., 10000., 100000.]);
    let g = (x.cumsum(1) * w).sum().backward()[x].to_vec();
    assert_eq!(g, vec![11., 10., 1100., 1000., 110000., 100000.]);
    // Empty tensors give empty tensors, along any axis.
    for shape in [[0, 3], [3, 0]] {
        let e = Tensor::<f32>::zeros(&shape);
        for axis in 0..2 {
            assert_eq!(e.cumsum(axis).shape(), &shape);
        }
        let tape = Tape::<f32>::new();
        let v = tape.var(e.clone());
        assert_eq!(v.cumsum(1).sum().backward()[v].shape(), &shape);
    }
}

#[test]
fn var_and_std_values_match_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[4]));
    // torch.var(x) = 1.6666666666666667, torch.var(x, correction=0) = 1.25,
    // torch.std(x) = 1.2909944487358056.
    assert!(close(x.var_axis(0, 1, false).item(), 5.0 / 3.0, 1e-15));
    assert_eq!(x.var_axis(0, 0, false).item(), 1.25);
    assert!(close(x.std_axis(0, 1, false).item(), 1.2909944487358056, 1e-15));
    // n − correction ≤ 0: PyTorch divides by 0, giving NaN for one element and inf otherwise.
    let one = tape.var(Tensor::from_vec(vec![5.], &[1]));
    assert!(one.var_axis(0, 1, false).item().is_nan());
    assert!(one.std_axis(0, 1, false).item().is_nan());
    assert_eq!(one.var_axis(0, 0, false).item(), 0.0);
    let two = tape.var(Tensor::from_vec(vec![1., 2.], &[2]));
    assert_eq!(two.var_axis(0, 2, false).item(), f64::INFINITY);
    assert_eq!(two.var_axis(0, 3, false).item(), f64::INFINITY);
    // An empty axis: NaN (torch.var of an empty tensor).
    let empty = tape.var(Tensor::<f64>::zeros(&[2, 0]));
    let v = empty.var_axis(1, 0, false);
    assert_eq!(v.shape(), vec![2]);
    assert!(v.value().as_slice().iter().all(|v| v.is_nan()));
    // var over columns of a matrix, keepdim.
    let m = tape.var(Tensor::from_vec(vec![1., 2., 3., 5., 8., 13.], &[2, 3]));
    let v = m.var_axis(1, 1, true);
    assert_eq!(v.shape(), vec![2, 1]);
    assert_eq!(v.value().to_vec(), vec![1.0, 16.333333333333332]);
    // std's gradient at a constant lane is 0 (PyTorch masks it), also to second order.
    let flat = tape.var(Tensor::from_vec(vec![2., 2., 2., 1., 3., 5.], &[2, 3]));
    let s = flat.std_axis(1, 0, false);
    let g = s.sum().grad(&[flat])[0];
    let gv = g.value().to_vec();
    assert_eq!(&gv[..3], &[0., 0., 0.]);
    assert!(gv.iter().all(|v| v.is_finite()), "{gv:?}");
    let h = (g * g).sum().backward()[flat].to_vec();
    assert!(h.iter().all(|v| v.is_finite()), "{h:?}");
}

#[test]
fn sum_axes_and_mean_axes_match_pytorch() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_fn(&[2, 3, 4], |i| i as f64));
    // torch.arange(24.).reshape(2, 3, 4).sum(dim=(2, 0)) = [60, 92, 124]
    assert_eq!(x.sum_axes(&[2, 0], false).value().to_vec(), vec![60., 92., 124.]);
    assert_eq!(x.sum_axes(&[0, 2], false).value().to_vec(), vec![60., 92., 124.]);
    assert_eq!(x.sum_axes(&[1, 2], true).shape(), vec![2, 1, 1]);
    assert_eq!(x.sum_axes(&[1, 2], true).value().to_vec(), vec![66., 210.]);
    assert_eq!(x.sum_axes(&[1], false).value(), x.value().sum_axis(1, false));
    assert_eq!(x.mean_axes(&[2, 0], true).value().to_vec(), vec![7.5, 11.5, 15.5]);
    assert_eq!(x.mean_axes(&[2, 0], true).shape(), vec![1, 3, 1]);
    // All axes, listed or not: torch.sum(x, dim=[]) sums everything.
    assert_eq!(x.sum_axes(&[], false).item(), 276.);
    assert_eq!(x.sum_axes(&[], false).shape(), Vec::<usize>::new());
    assert_eq!(x.sum_axes(&[], true).shape(), vec![1, 1, 1]);
    assert_eq!(x.sum_axes(&[2, 1, 0], false).item(), 276.);
    assert_eq!(x.mean_axes(&[], false).item(), 11.5);
    assert_eq!(x.mean_axes(&[0, 1, 2], true).shape(), vec![1, 1, 1]);
    // Rank 0 with no axes: the value itself.
    let s = tape.var(3.5);
    assert_eq!(s.sum_axes(&[], false).item(), 3.5);
    assert_eq!(s.mean_axes(&[], true).item(), 3.5);
    // Empty axes: sums are 0, means NaN.
    let e = tape.var(Tensor::<f64>::zeros(&[2, 0, 3]));
    let sum = e.sum_axes(&[1], false);
    assert_eq!((sum.shape(), sum.value().to_vec()), (vec![2, 3], vec![0.0; 6]));
    assert!(
        e.mean_axes(&[1, 2], false)
            .value()
            .as_slice()
            .iter()
            .all(|v| v.is_nan())
    );
    assert_eq!(e.mean_axes(&[0, 2], false).shape(), vec![0]);
    assert_eq!(e.sum_axes(&[1], false).sum().backward()[e].shape(), &[2, 0, 3]);
    // Gradients: 1 for sums, 1/count for means.
    let g = x.mean_axes(&[0, 2], false).sum().backward();
    assert_eq!(g[x], Tensor::full(&[2, 3, 4], 0.125));
}

// ---------------------------------------------------------------------------------------------
// Large tensors: the threaded paths
// ---------------------------------------------------------------------------------------------

/// logsumexp along `axis` the slow way: a lane at a time, in f64.
fn naive_logsumexp(x: &Tensor<f32>, axis: usize) -> Vec<f64> {
    let shape = x.shape();
    let (outer, n, inner): (usize, usize, usize) = (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    );
    let v = x.as_slice();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let lane: Vec<f64> = (0..n).map(|j| f64::from(v[(o * n + j) * inner + i])).collect();
            let m = lane.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            out.push(m + lane.iter().map(|&a| (a - m).exp()).sum::<f64>().ln());
        }
    }
    out
}

/// cumsum along `axis` the slow way, with f64 running sums (bit for bit what the kernel gives).
fn naive_cumsum(x: &Tensor<f32>, axis: usize, reverse: bool) -> Vec<f32> {
    let shape = x.shape();
    let (outer, n, inner): (usize, usize, usize) = (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    );
    let v = x.as_slice();
    let mut out = vec![0.0f32; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = 0.0f64;
            let order: Box<dyn Iterator<Item = usize>> = if reverse {
                Box::new((0..n).rev())
            } else {
                Box::new(0..n)
            };
            for j in order {
                let k = (o * n + j) * inner + i;
                acc += f64::from(v[k]);
                out[k] = acc as f32;
            }
        }
    }
    out
}

#[test]
fn large_tensors_agree_with_naive_loops_whatever_the_split() {
    // Shapes that take each path: long lanes (one or a few), many lanes, wide blocks (axis 0),
    // several blocks; odd sizes so that pieces are uneven. 3 threads split 2 blocks 2 ways each.
    let cases: [(&[usize], usize); 7] = [
        (&[300_001], 0),
        (&[2, 150_001], 1),
        (&[520, 520], 1),
        (&[520, 520], 0),
        (&[2, 300, 450], 1),
        (&[9, 100, 300], 1),
        (&[3, 90_000], 0),
    ];
    for threads in [3, 0] {
        tapegrad::set_num_threads(threads);
        for &(shape, axis) in &cases {
            let x = Tensor::<f32>::from_fn(shape, |i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0);
            let lse = x.logsumexp(axis, false);
            for (i, (&a, b)) in lse.as_slice().iter().zip(naive_logsumexp(&x, axis)).enumerate() {
                assert!(
                    (f64::from(a) - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "logsumexp {shape:?} axis {axis}, element {i}: {a} vs {b}"
                );
            }
            assert_eq!(
                x.cumsum(axis).to_vec(),
                naive_cumsum(&x, axis, false),
                "cumsum {shape:?} axis {axis}"
            );
            // Backward: the reversed cumsum, and the softmax.
            let tape = Tape::<f32>::new();
            let v = tape.var(x.clone());
            let w = Tensor::<f32>::from_fn(shape, |i| (i % 5) as f32 - 2.0);
            let g = (v.cumsum(axis) * tape.constant(w.clone())).sum().backward();
            assert_eq!(
                g[v].to_vec(),
                naive_cumsum(&w, axis, true),
                "cumsum backward {shape:?} axis {axis}"
            );
            let g = v.logsumexp(axis, true).sum().backward();
            let softmax = x.softmax(axis);
            for (&a, &b) in g[v].as_slice().iter().zip(softmax.as_slice()) {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-4 * b.abs(),
                    "logsumexp backward {shape:?} axis {axis}: {a} vs {b}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The panic message of `f` applied to a fresh var holding zeros of `shape`.
fn message_on(shape: &[usize], f: fn(Var<'_, f64>)) -> String {
    let shape = shape.to_vec();
    panic_message(move || {
        let tape = Tape::<f64>::new();
        f(tape.var(Tensor::zeros(&shape)));
    })
}

#[test]
fn bad_axes_panic_naming_the_op_the_axis_and_the_shape() {
    type Case = (&'static [usize], fn(Var<'_, f64>), &'static str);
    let cases: [Case; 14] = [
        (
            &[2, 3],
            |x| {
                let _ = x.logsumexp(2, false);
            },
            "tapegrad: logsumexp: axis 2 is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.min_axis(5, true);
            },
            "tapegrad: min_axis: axis 5 is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.cumsum(2);
            },
            "tapegrad: cumsum: axis 2 is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.var_axis(2, 1, false);
            },
            "tapegrad: var_axis: axis 2 is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.std_axis(3, 0, false);
            },
            "tapegrad: std_axis: axis 3 is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.sum_axes(&[0, 3], false);
            },
            "tapegrad: sum_axes: axis 3 in [0, 3] is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.mean_axes(&[2], true);
            },
            "tapegrad: mean_axes: axis 2 in [2] is out of range for shape [2, 3] (rank 2)",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.sum_axes(&[1, 0, 1], false);
            },
            "tapegrad: sum_axes: axis 1 appears twice in [1, 0, 1]",
        ),
        (
            &[2, 3],
            |x| {
                let _ = x.mean_axes(&[0, 0], false);
            },
            "tapegrad: mean_axes: axis 0 appears twice in [0, 0]",
        ),
        // Rank 0: every axis is out of range.
        (
            &[],
            |x| {
                let _ = x.logsumexp(0, false);
            },
            "tapegrad: logsumexp: axis 0 is out of range for shape [] (rank 0)",
        ),
        (
            &[],
            |x| {
                let _ = x.min_axis(0, false);
            },
            "tapegrad: min_axis: axis 0 is out of range for shape [] (rank 0)",
        ),
        (
            &[],
            |x| {
                let _ = x.cumsum(0);
            },
            "tapegrad: cumsum: axis 0 is out of range for shape [] (rank 0)",
        ),
        (
            &[],
            |x| {
                let _ = x.var_axis(0, 0, false);
            },
            "tapegrad: var_axis: axis 0 is out of range for shape [] (rank 0)",
        ),
        (
            &[],
            |x| {
                let _ = x.sum_axes(&[0], false);
            },
            "tapegrad: sum_axes: axis 0 in [0] is out of range for shape [] (rank 0)",
        ),
    ];
    for (shape, f, want) in cases {
        let got = message_on(shape, f);
        assert!(got.contains(want), "expected {want:?}, got {got:?}");
    }
}

#[test]
#[should_panic(expected = "tapegrad: min_axis: axis 1 of shape [2, 0] is empty")]
fn min_axis_of_an_empty_axis_panics() {
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros(&[2, 0]));
    let _ = x.min_axis(1, false);
}

#[test]
#[should_panic(expected = "tapegrad: logsumexp: axis 1 is out of range for shape [4] (rank 1)")]
fn tensor_logsumexp_checks_its_axis() {
    let _ = Tensor::<f32>::zeros(&[4]).logsumexp(1, true);
}

#[test]
#[should_panic(expected = "tapegrad: cumsum: axis 0 is out of range for shape [] (rank 0)")]
fn tensor_cumsum_checks_its_axis() {
    let _ = Tensor::<f64>::scalar(1.0).cumsum(0);
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<(String, u32)>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn panics_report_the_callers_location() {
    // The hook is process-wide but records into a thread-local, so other tests' panics only
    // touch their own slot.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let site = info.location().map(|l| (l.file().to_string(), l.line()));
        LAST_PANIC.with(|p| *p.borrow_mut() = site);
    }));
    type Case = (&'static str, fn(Var<'_, f64>, Var<'_, f64>));
    let cases: [Case; 9] = [
        ("min_axis", |x, _| _ = x.min_axis(2, false)),
        ("min_axis of an empty axis", |_, e| _ = e.min_axis(1, false)),
        ("logsumexp", |x, _| _ = x.logsumexp(2, false)),
        ("cumsum", |x, _| _ = x.cumsum(2)),
        ("var_axis", |x, _| _ = x.var_axis(2, 1, false)),
        ("std_axis", |x, _| _ = x.std_axis(2, 1, false)),
        ("sum_axes", |x, _| _ = x.sum_axes(&[1, 1], false)),
        ("mean_axes", |x, _| _ = x.mean_axes(&[4], false)),
        ("Tensor::logsumexp", |x, _| _ = x.value().logsumexp(2, true)),
    ];
    let mut wrong = Vec::new();
    for (name, f) in cases {
        LAST_PANIC.with(|p| p.borrow_mut().take());
        let result = std::panic::catch_unwind(move || {
            let tape = Tape::<f64>::new();
            f(tape.var(Tensor::zeros(&[2, 3])), tape.var(Tensor::zeros(&[2, 0])));
        });
        let site = LAST_PANIC.with(|p| p.borrow_mut().take());
        match (result, site) {
            (Err(_), Some((file, _))) if file.ends_with("ops2_reduce.rs") => {}
            (_, site) => wrong.push(format!("{name}: {site:?}")),
        }
    }
    std::panic::set_hook(previous);
    assert!(wrong.is_empty(), "panics not at the caller's line: {wrong:?}");
}
