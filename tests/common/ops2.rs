//! The harness of the ops2 property tests (`ops2_join`, `ops2_index`): checking one op in f64
//! to second order and in f32 against f64, naive-reference helpers, panic-message checks and the
//! shape and value strategies.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tapegrad::{Float, Tape, Tensor, Var, gradcheck};

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Gives a closure the higher-ranked signature of a function under test.
pub fn op<T: Float, F>(f: F) -> F
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    f
}

pub fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Fixed weights in [0.5, 1.5) for seeding the backward pass of a non-scalar output, different
/// from element to element so that a gradient sent to the wrong place shows.
pub fn seed<T: Float>(shape: &[usize]) -> Tensor<T> {
    Tensor::from_fn(shape, |i| T::from_f64(0.5 + ((i * 37 + 11) % 17) as f64 / 17.0))
}

/// Runs `f` forward and backward (seeded with [`seed`]): the output and every input's gradient
/// (zeros for an input the output does not depend on).
pub fn run<T: Float, F>(f: &F, inputs: &[Tensor<T>]) -> (Tensor<T>, Vec<Tensor<T>>)
where
    F: for<'t> Fn(&'t Tape<T>, &[Var<'t, T>]) -> Var<'t, T>,
{
    let tape = Tape::new();
    let xs: Vec<Var<T>> = inputs.iter().map(|x| tape.var(x.clone())).collect();
    let y = f(&tape, &xs);
    let out = y.value();
    let grads = y.backward_with_seed(seed(out.shape()));
    let gs = xs
        .iter()
        .zip(inputs)
        .map(|(x, t)| grads.wrt(*x).cloned().unwrap_or_else(|| Tensor::zeros(t.shape())))
        .collect();
    (out, gs)
}

/// `|a - b| <= 1e-3 (1 + |b|)` elementwise with equal shapes, `a` finite: f32 against f64.
pub fn assert_close(what: &str, a: &Tensor<f32>, b: &Tensor<f64>) -> Result<(), TestCaseError> {
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

/// The three checks of one op on one case: first and second order in f64, then f32 against f64
/// (values and every input's gradient, with the shapes of the inputs).
pub fn check_op<F64, F32>(f64_fn: F64, f32_fn: F32, inputs: &[Tensor<f64>]) -> Result<(), TestCaseError>
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
    for (i, ((g, w), x)) in got_grads.iter().zip(&want_grads).zip(inputs).enumerate() {
        prop_assert_eq!(w.shape(), x.shape(), "gradient {} has the wrong shape", i);
        assert_close(&format!("gradient {i}"), g, w)?;
    }
    Ok(())
}

/// The multi-index of the row-major position `flat` in `shape`.
pub fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        index[i] = flat % d;
        flat /= d;
    }
    index
}

/// A tensor of `shape` whose element at multi-index `p` is `f(p)`: the naive references.
pub fn build(shape: &[usize], f: impl Fn(&[usize]) -> f64) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| f(&unravel(i, shape)))
}

/// Runs `f` and returns its panic message.
pub fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// `f` panics with a message that contains every one of `needles`.
#[track_caller]
pub fn assert_panics(what: &str, needles: &[&str], f: impl FnOnce()) {
    let msg = panic_message(f);
    for needle in needles {
        assert!(
            msg.contains(needle),
            "{what}: the message should contain {needle:?}, got {msg:?}"
        );
    }
}

/// A var of zeros of `shape` on `tape`.
pub fn zeros<'t>(tape: &'t Tape<f64>, shape: &[usize]) -> Var<'t, f64> {
    tape.var(Tensor::zeros(shape))
}

/// `0, 1, 2, ...` in `shape`.
pub fn iota(shape: &[usize]) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| i as f64)
}

/// Shapes of a rank in `rank` with dimensions in `dims`.
pub fn shape(
    rank: std::ops::RangeInclusive<usize>,
    dims: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<usize>> {
    rank.prop_flat_map(move |r| vec(dims.clone(), r))
}

/// Values in (-1.5, 1.5) of the given shape.
pub fn values(shape: Vec<usize>) -> BoxedStrategy<Tensor<f64>> {
    let n: usize = shape.iter().product();
    vec(-1.5..1.5f64, n)
        .prop_map(move |v| Tensor::from_vec(v, &shape))
        .boxed()
}
