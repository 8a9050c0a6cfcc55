//! Losses and normalisations at extreme logits in f32, against PyTorch (issue 18):
//! `tests/data/extreme_losses_reference.json`, written by `tests/data/make_extreme_reference.py`,
//! holds PyTorch 2.15's values and gradients (of the sum of the per-element outputs) over a
//! sweep of 0, ±1, ±15, ±17, ±20, ±88, ±104, ±1e3, ±1e30, ±f32::MAX, ±inf and NaN.
//!
//! Values must agree to 4 ulps (relative to their own size, so a tail of 4e-8 has to be right to
//! 4e-8 × 5e-7), non-finite values exactly (NaN where PyTorch gives NaN). Where PyTorch's f32
//! kernel is itself further than that from the exact value (its binary cross-entropy computes
//! `x - x` before adding the tail `ln(1 + e^x)` at x ≤ -15, and gets 0), agreeing with PyTorch's
//! f64 result on the same input (to 4 ulps of f32) passes instead. Gradients of the
//! softmax family are differences of numbers of size 1 (`p - 1{j = t}`), which PyTorch rounds at
//! that scale (5.96e-8 where the exact value is 0), so they agree to 4 ulps of 1 as well.

use serde_json::Value;
use tapegrad::loss::{self, CrossEntropyConfig};
use tapegrad::{Tape, Tensor, Var};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/extreme_losses_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("the reference file is committed");
    serde_json::from_str(&text).expect("valid JSON")
}

fn decode(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| match x {
            Value::String(s) if s == "nan" => f32::NAN,
            Value::String(s) if s == "inf" => f32::INFINITY,
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            x => x.as_f64().expect("a number") as f32,
        })
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("a shape")
        .iter()
        .map(|d| d.as_u64().expect("a dimension") as usize)
        .collect()
}

/// `got` is `want` to `ulps` units in the last place of `max(|want|, floor)`, or both are the same
/// non-finite number. Below f32's normal range (1.2e-38) every difference counts as rounding: a
/// loss of 6.1e-39 (the exact ln(1 + e^-88)) against PyTorch's 0 passes.
fn close(got: f32, want: f32, ulps: f32, floor: f32) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    let scale = want.abs().max(floor);
    (got - want).abs() <= (ulps * f32::EPSILON * scale).max(f32::MIN_POSITIVE)
}

/// `got` agrees with PyTorch's f32 result `want`, or, where that is finite, with its f64 result
/// `exact` on the same input.
fn agrees(got: f32, want: f32, exact: f32, floor: f32) -> bool {
    close(got, want, 4.0, floor) || (want.is_finite() && close(got, exact, 4.0, floor))
}

/// Runs `f` on every case named `name`: the output and the gradient of its sum.
fn check(name: &str, grad_floor: f32, f: impl for<'t> Fn(Var<'t, f32>, &Value) -> Var<'t, f32>) {
    let reference = reference();
    let case = reference["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let input = Tensor::from_vec(decode(&case["input"]), &shape(&case["shape"]));
    let tape = Tape::<f32>::new();
    let x = tape.var(input.clone());
    let y = f(x, case);
    assert_eq!(y.shape(), shape(&case["output_shape"]), "{name}: output shape");
    let out = y.value().to_vec();
    let grad = y.sum().backward()[x].to_vec();
    let (want_out, want_grad) = (decode(&case["output"]), decode(&case["grad"]));
    // PyTorch in f64 on the same inputs, rounded to f32: where PyTorch's f32 kernel rounds more
    // than ours, being nearer the exact value is right too.
    let (exact_out, exact_grad) = (decode(&case["output_f64"]), decode(&case["grad_f64"]));
    let mut wrong = Vec::new();
    let row = input.shape().get(1).copied().unwrap_or(1);
    for (i, ((&g, &w), &e)) in out.iter().zip(&want_out).zip(&exact_out).enumerate() {
        if !agrees(g, w, e, 0.0) {
            wrong.push(format!("output {i}: {g:e}, PyTorch {w:e}"));
        }
    }
    for (i, ((&g, &w), &e)) in grad.iter().zip(&want_grad).zip(&exact_grad).enumerate() {
        if !agrees(g, w, e, grad_floor) {
            let at = &input.as_slice()[i / row * row..][..row];
            wrong.push(format!("grad {i} (row {at:?}): {g:e}, PyTorch {w:e}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} differences:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn targets(case: &Value) -> Vec<usize> {
    case["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|t| t.as_u64().expect("a class") as usize)
        .collect()
}

#[test]
fn log_softmax_softmax_and_logsumexp_match_pytorch_at_extreme_logits() {
    check("log_softmax", 1.0, |x, _| x.log_softmax(1));
    check("softmax", 1.0, |x, _| x.softmax(1));
    check("logsumexp", 1.0, |x, _| x.logsumexp(1, false));
}

/// Per-row losses (PyTorch's reduction "none"): `f` on a batch of one row each, stacked.
fn per_row<'t>(
    x: Var<'t, f32>,
    t: &[usize],
    f: impl Fn(Var<'t, f32>, &[usize]) -> Var<'t, f32>,
) -> Var<'t, f32> {
    let rows: Vec<_> = (0..t.len()).map(|i| f(x.narrow(0, i, 1), &t[i..i + 1])).collect();
    Var::stack(&rows, 0)
}

#[test]
fn cross_entropy_and_nll_match_pytorch_at_extreme_logits() {
    check("cross_entropy", 1.0, |x, c| {
        per_row(x, &targets(c), |x, t| loss::cross_entropy(x, t))
    });
    check("cross_entropy_smoothed", 1.0, |x, c| {
        let cfg = CrossEntropyConfig { label_smoothing: 0.1 };
        per_row(x, &targets(c), |x, t| loss::cross_entropy_with(x, t, cfg))
    });
    check("nll", 1.0, |x, c| {
        per_row(x, &targets(c), |x, t| loss::nll(x.log_softmax(1), t))
    });
}

#[test]
fn sigmoid_and_binary_cross_entropy_match_pytorch_at_extreme_logits() {
    check("sigmoid", 0.0, |x, _| x.sigmoid());
    for (name, y) in [
        ("bce_with_logits_0.0", 0.0f32),
        ("bce_with_logits_0.3", 0.3),
        ("bce_with_logits_1.0", 1.0),
    ] {
        // Each element on its own, as PyTorch's reduction "none" (the loss averages).
        check(name, if y == 0.0 { 0.0 } else { 1.0 }, |x, _| {
            let n = x.shape()[0];
            let rows: Vec<_> = (0..n)
                .map(|i| {
                    let xi = x.narrow(0, i, 1);
                    loss::binary_cross_entropy_with_logits(
                        xi,
                        xi.tape().constant(Tensor::from_vec(vec![y], &[1])),
                    )
                })
                .collect();
            Var::stack(&rows, 0)
        });
    }
}

#[test]
fn nan_in_gives_nan_out_as_in_pytorch() {
    // relu(NaN) was 0 with gradient 0, so a NaN born before a ReLU vanished silently.
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::from_vec(vec![f32::NAN, -1.0, 2.0, 0.5], &[1, 1, 2, 2]));
    let relu = x.relu().value().to_vec();
    assert!(relu[0].is_nan() && relu[1..] == [0.0, 2.0, 0.5], "relu {relu:?}");
    let clamped = x.clamp(-0.5, 0.5).value().to_vec();
    assert!(
        clamped[0].is_nan() && clamped[1..] == [-0.5, 0.5, 0.5],
        "clamp {clamped:?}"
    );
    let flat = x.reshape(&[4]);
    assert!(flat.max_axis(0, false).item().is_nan(), "max_axis");
    assert!(flat.min_axis(0, false).item().is_nan(), "min_axis");
    let pooled = x.max_pool2d((2, 2), (2, 2), (0, 0)).value().to_vec();
    assert!(pooled[0].is_nan(), "max_pool2d {pooled:?}");
    assert!(flat.sum().item().is_nan() && flat.softmax(0).value().to_vec().iter().all(|v| v.is_nan()));
}
