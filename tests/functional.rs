//! `tapegrad::functional` against `torch.autograd.functional` (tests/data/functional_reference.json,
//! from make_functional_reference.py) and against central finite differences (proptest, f64).

mod common;

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor, Var, functional};

use common::{cases, compare, load_json, tensor, tensors};

// ---------------------------------------------------------------------------------------------
// The reference functions, built as make_functional_reference.py builds them.

/// The function of the reference case `name`, with its constants `c`.
fn reference_fn<'t>(name: &str, tape: &'t Tape<f64>, c: &[Tensor<f64>], xs: &[Var<'t, f64>]) -> Var<'t, f64> {
    let k = |i: usize| tape.constant(c[i].clone());
    match name {
        "elementwise" => elementwise(xs[0]),
        "matmul_tanh" => k(0).matmul(&xs[0]).tanh(),
        "softmax_rows" => xs[0].softmax(1),
        "logsumexp_rows" => xs[0].logsumexp(1, false),
        "logsumexp_all" => {
            let n = xs[0].value().numel();
            xs[0].reshape(&[n]).logsumexp(0, false)
        }
        "non_square" => {
            let x = xs[0];
            Var::cat(&[x * x.sum(), x.narrow(0, 0, 2).sin()], 0)
        }
        "two_inputs" => xs[0].matmul(&xs[1]).tanh(),
        "two_inputs_scalar" => {
            let (a, b) = (xs[0], xs[1]);
            let n = b.shape()[0];
            a.matmul(&b.reshape(&[n, 1]))
                .reshape(&[a.shape()[0]])
                .logsumexp(0, false)
        }
        "rosenbrock" => rosenbrock(xs[0]),
        "mlp_loss" => mlp_loss(xs[0], k(0), xs[1], k(1)),
        "mlp_loss_w1" => mlp_loss(xs[0], k(0), k(1), k(2)),
        other => panic!("no function {other:?} in tests/functional.rs"),
    }
}

fn elementwise<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    x.sin() * x.exp() + x.tanh().square()
}

/// Σ 100 (x[i+1] - x[i]²)² + (1 - x[i])² over the flattened x.
fn rosenbrock<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    let n = x.value().numel();
    let x = x.reshape(&[n]);
    let (head, tail) = (x.narrow(0, 0, n - 1), x.narrow(0, 1, n - 1));
    (100.0 * (tail - head.square()).square() + (1.0 - head).square()).sum()
}

/// mean((tanh(data · w1) · w2 - target)²)
fn mlp_loss<'t>(
    w1: Var<'t, f64>,
    data: Var<'t, f64>,
    w2: Var<'t, f64>,
    target: Var<'t, f64>,
) -> Var<'t, f64> {
    (data.matmul(&w1).tanh().matmul(&w2) - target).square().mean()
}

#[test]
fn agrees_with_torch_autograd_functional() {
    let reference = load_json("functional_reference.json");
    let mut failures = Vec::new();
    let mut scalar_cases = 0;
    for case in cases(&reference, "cases") {
        let name = case["name"].as_str().expect("a name");
        let consts = tensors(&case["consts"]);
        let xs = tensors(&case["inputs"]);
        let (u, vs) = (tensor(&case["u"]), tensors(&case["vs"]));
        let jac = tensors(&case["jacobian"]);
        let vjp = tensors(&case["vjp"]);
        let jvp = tensor(&case["jvp"]);
        let out = tensor(&case["out"]);
        let hessian = case.get("hessian").map(|rows| {
            rows.as_array()
                .expect("hessian rows")
                .iter()
                .map(tensors)
                .collect::<Vec<_>>()
        });
        let hvp = case.get("hvp").map(tensors);

        // The forms for several inputs, on every case.
        let f = functional::function_many(|tape, vars| reference_fn(name, tape, &consts, vars));
        let got = functional::jacobian_many(f, &xs);
        assert_eq!(got.len(), xs.len(), "{name}: jacobian_many");
        for (i, (g, w)) in got.iter().zip(&jac).enumerate() {
            compare(&mut failures, &format!("{name}: jacobian_many[{i}]"), g, w);
        }
        let (y, got) = functional::vjp_many(f, &xs, &u);
        compare(&mut failures, &format!("{name}: vjp_many output"), &y, &out);
        for (i, (g, w)) in got.iter().zip(&vjp).enumerate() {
            compare(&mut failures, &format!("{name}: vjp_many[{i}]"), g, w);
        }
        let (y, got) = functional::jvp_many(f, &xs, &vs);
        compare(&mut failures, &format!("{name}: jvp_many output"), &y, &out);
        compare(&mut failures, &format!("{name}: jvp_many"), &got, &jvp);
        if let (Some(hessian), Some(hvp)) = (&hessian, &hvp) {
            scalar_cases += 1;
            let got = functional::hessian_many(f, &xs);
            for (i, row) in hessian.iter().enumerate() {
                for (j, w) in row.iter().enumerate() {
                    compare(
                        &mut failures,
                        &format!("{name}: hessian_many[{i}][{j}]"),
                        &got[i][j],
                        w,
                    );
                }
            }
            let (y, got) = functional::hvp_many(f, &xs, &vs);
            compare(&mut failures, &format!("{name}: hvp_many output"), &y, &out);
            for (i, (g, w)) in got.iter().zip(hvp).enumerate() {
                compare(&mut failures, &format!("{name}: hvp_many[{i}]"), g, w);
            }
        }

        // The one-input forms where the case has one input.
        if xs.len() != 1 {
            continue;
        }
        let g = functional::function(|tape, x| reference_fn(name, tape, &consts, &[x]));
        let x = &xs[0];
        compare(
            &mut failures,
            &format!("{name}: jacobian"),
            &functional::jacobian(g, x),
            &jac[0],
        );
        let (y, got) = functional::vjp(g, x, &u);
        compare(&mut failures, &format!("{name}: vjp output"), &y, &out);
        compare(&mut failures, &format!("{name}: vjp"), &got, &vjp[0]);
        let (y, got) = functional::jvp(g, x, &vs[0]);
        compare(&mut failures, &format!("{name}: jvp output"), &y, &out);
        compare(&mut failures, &format!("{name}: jvp"), &got, &jvp);
        if let (Some(hessian), Some(hvp)) = (&hessian, &hvp) {
            compare(
                &mut failures,
                &format!("{name}: hessian"),
                &functional::hessian(g, x),
                &hessian[0][0],
            );
            let (y, got) = functional::hvp(g, x, &vs[0]);
            compare(&mut failures, &format!("{name}: hvp output"), &y, &out);
            compare(&mut failures, &format!("{name}: hvp"), &got, &hvp[0]);
        }
    }
    assert!(
        scalar_cases >= 4,
        "the reference file has too few scalar functions"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Against central finite differences, over random shapes and values.

/// Central-difference step, and the agreement asked of a finite difference: the truncation error
/// is O(eps²) and the rounding error O(1e-16 / eps), both well below 1e-7 for these functions.
const EPS: f64 = 1e-5;
const FD_ATOL: f64 = 1e-7;
const FD_RTOL: f64 = 1e-6;
/// Two exact computations of the same product (e.g. `jvp` and `J · v`) differ by rounding only.
const EXACT: f64 = 1e-10;

/// A vector-valued test function of a `[rows, cols]` input: `kind` picks it, `c` holds its
/// constants (a `[4, rows]` matrix).
fn vector_fn<'t>(kind: usize, tape: &'t Tape<f64>, c: &Tensor<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
    match kind {
        0 => elementwise(x),
        1 => tape.constant(c.clone()).matmul(&x).tanh(),
        2 => x.softmax(1),
        3 => x.logsumexp(1, false),
        _ => {
            // R^n -> R^(2n + 1): a non-square Jacobian.
            let n = x.value().numel();
            let flat = x.reshape(&[n]);
            Var::cat(
                &[flat * flat.sum(), flat.sin(), flat.square().sum().reshape(&[1])],
                0,
            )
        }
    }
}

/// A scalar test function of a `[rows, cols]` input, for Hessians.
fn scalar_fn<'t>(kind: usize, tape: &'t Tape<f64>, c: &Tensor<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
    match kind {
        0 => rosenbrock(x),
        1 => {
            let data = tape.constant(c.clone()); // [4, rows]
            let w2 = tape.constant(Tensor::from_fn(&[x.shape()[1], 1], |i| 0.5 - 0.3 * i as f64));
            let target = tape.constant(Tensor::from_fn(&[4, 1], |i| i as f64 * 0.25 - 0.4));
            mlp_loss(x, data, w2, target)
        }
        2 => {
            let n = x.value().numel();
            x.reshape(&[n]).logsumexp(0, false)
        }
        _ => elementwise(x).sum(),
    }
}

/// The value of `f` at `x`, recorded on a fresh tape.
fn eval(f: impl for<'t> Fn(&'t Tape<f64>, Var<'t, f64>) -> Var<'t, f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let tape = Tape::new();
    f(&tape, tape.var(x.clone())).value()
}

/// The gradient of a scalar `f` at `x` by plain backward (not through `functional`).
fn gradient(f: impl for<'t> Fn(&'t Tape<f64>, Var<'t, f64>) -> Var<'t, f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let tape = Tape::new();
    let v = tape.var(x.clone());
    f(&tape, v).backward()[v].clone()
}

/// `(g(x + eps·d) - g(x - eps·d)) / 2eps`, elementwise.
fn central(g: impl Fn(&Tensor<f64>) -> Tensor<f64>, x: &Tensor<f64>, d: &Tensor<f64>) -> Tensor<f64> {
    let step = |s: f64| Tensor::from_fn(x.shape(), |i| x.as_slice()[i] + s * EPS * d.as_slice()[i]);
    let (plus, minus) = (g(&step(1.0)), g(&step(-1.0)));
    Tensor::from_fn(plus.shape(), |i| {
        (plus.as_slice()[i] - minus.as_slice()[i]) / (2.0 * EPS)
    })
}

/// The finite-difference Jacobian of `g` (g's shape, then x's), one column per input element.
fn fd_jacobian(g: impl Fn(&Tensor<f64>) -> Tensor<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let n = x.numel();
    let columns: Vec<Tensor<f64>> = (0..n)
        .map(|j| {
            central(
                &g,
                x,
                &Tensor::from_fn(x.shape(), |i| if i == j { 1.0 } else { 0.0 }),
            )
        })
        .collect();
    let out_shape = columns[0].shape().to_vec();
    let shape = [&out_shape[..], x.shape()].concat();
    Tensor::from_fn(&shape, |k| columns[k % n].as_slice()[k / n])
}

/// Asserts `got` ≈ `want` elementwise (`|got - want| <= atol + rtol·|want|`), same shapes.
fn assert_close(
    what: &str,
    got: &Tensor<f64>,
    want: &Tensor<f64>,
    atol: f64,
    rtol: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.shape(), want.shape(), "{}: shapes", what);
    for (i, (&g, &w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        prop_assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{}[{}] (row-major): got {:e}, expected {:e}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

/// `J` contracted with `v` over x's axes: `(J v)[i] = Σ_j J[i, j] v[j]`.
fn contract_right(j: &Tensor<f64>, v: &Tensor<f64>) -> Vec<f64> {
    let n = v.numel();
    j.as_slice()
        .chunks(n)
        .map(|row| row.iter().zip(v.as_slice()).map(|(a, b)| a * b).sum())
        .collect()
}

/// `uᵀ J`: `(uᵀJ)[j] = Σ_i u[i] J[i, j]`.
fn contract_left(u: &Tensor<f64>, j: &Tensor<f64>) -> Vec<f64> {
    let n = j.numel() / u.numel().max(1);
    (0..n)
        .map(|c| {
            u.as_slice()
                .iter()
                .enumerate()
                .map(|(r, a)| a * j.as_slice()[r * n + c])
                .sum()
        })
        .collect()
}

/// A function of several inputs, as a trait object.
type ManyFn = dyn for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>;

/// A random `[rows, cols]` point, a tangent of its shape and the constants of the test functions.
fn sample(rows: usize, cols: usize, seed: u64) -> (Tensor<f64>, Tensor<f64>, Tensor<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Tensor::rand_uniform(&[rows, cols], -1.5, 1.5, &mut rng);
    let v = Tensor::randn(&[rows, cols], &mut rng);
    let c = Tensor::randn(&[4, rows], &mut rng);
    (x, v, c)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn jacobian_jvp_and_vjp_agree_with_finite_differences(
        kind in 0usize..5, rows in 1usize..4, cols in 1usize..4, seed in any::<u64>()
    ) {
        let (x, v, c) = sample(rows, cols, seed);
        let f = functional::function(|tape, x| vector_fn(kind, tape, &c, x));
        let j = functional::jacobian(f, &x);
        let y = eval(f, &x);
        prop_assert_eq!(j.shape(), &[y.shape(), x.shape()].concat()[..]);
        assert_close("jacobian vs FD", &j, &fd_jacobian(|p| eval(f, p), &x), FD_ATOL, FD_RTOL)?;

        let (y_jvp, jv) = functional::jvp(f, &x, &v);
        assert_close("jvp output", &y_jvp, &y, 0.0, 0.0)?;
        assert_close("jvp vs J·v", &jv, &Tensor::from_vec(contract_right(&j, &v), y.shape()), EXACT, EXACT)?;
        assert_close("jvp vs FD along v", &jv, &central(|p| eval(f, p), &x, &v), FD_ATOL, FD_RTOL)?;

        let u = Tensor::randn(y.shape(), &mut StdRng::seed_from_u64(seed ^ 1));
        let (y_vjp, uj) = functional::vjp(f, &x, &u);
        assert_close("vjp output", &y_vjp, &y, 0.0, 0.0)?;
        assert_close("vjp vs uᵀJ", &uj, &Tensor::from_vec(contract_left(&u, &j), x.shape()), EXACT, EXACT)?;
    }

    #[test]
    fn hessian_and_hvp_agree_with_finite_differences_of_the_gradient(
        kind in 0usize..4, rows in 1usize..4, cols in 1usize..4, seed in any::<u64>()
    ) {
        prop_assume!(kind != 0 || rows * cols >= 2); // Rosenbrock needs two variables
        let (x, v, c) = sample(rows, cols, seed);
        let f = functional::function(|tape, x| scalar_fn(kind, tape, &c, x));
        let n = x.numel();
        let h = functional::hessian(f, &x);
        prop_assert_eq!(h.shape(), &[x.shape(), x.shape()].concat()[..]);
        // Symmetric, and the finite-difference Jacobian of the gradient.
        let scale = h.as_slice().iter().fold(1.0f64, |m, a| m.max(a.abs()));
        for i in 0..n {
            for k in 0..n {
                let (a, b) = (h.as_slice()[i * n + k], h.as_slice()[k * n + i]);
                prop_assert!((a - b).abs() <= EXACT * scale, "H[{}][{}] = {:e} but H[{}][{}] = {:e}", i, k, a, k, i, b);
            }
        }
        let fd = fd_jacobian(|p| gradient(f, p), &x);
        assert_close("hessian vs FD of the gradient", &h, &fd, FD_ATOL * scale, FD_RTOL)?;

        let (y, hv) = functional::hvp(f, &x, &v);
        assert_close("hvp output", &y, &eval(f, &x), 0.0, 0.0)?;
        let hv_exact = Tensor::from_vec(contract_right(&h, &v), x.shape());
        assert_close("hvp vs H·v", &hv, &hv_exact, EXACT * scale, EXACT)?;
        assert_close("hvp vs FD of the gradient along v", &hv, &central(|p| gradient(f, p), &x, &v), FD_ATOL * scale, FD_RTOL)?;
    }

    #[test]
    fn forms_for_several_inputs_agree_with_finite_differences(
        m in 1usize..4, k in 1usize..4, seed in any::<u64>()
    ) {
        // f(A, b) = tanh(A b) ⊙ (1 + b₀²) (vector-valued) and s(A, b) = Σ log(1 + exp(A b)) + Σ b³ / 3.
        let mut rng = StdRng::seed_from_u64(seed);
        let a = Tensor::rand_uniform(&[m, k], -1.0, 1.0, &mut rng);
        let b = Tensor::rand_uniform(&[k, 1], -1.0, 1.0, &mut rng);
        let xs = [a.clone(), b.clone()];
        let vs = [Tensor::randn(&[m, k], &mut rng), Tensor::randn(&[k, 1], &mut rng)];
        let f = functional::function_many(|_tape, xs| {
            xs[0].matmul(&xs[1]).tanh() * (xs[1].narrow(0, 0, 1).square() + 1.0)
        });
        let s = functional::function_many(|_tape, xs| {
            xs[0].matmul(&xs[1]).softplus().sum() + xs[1].powi(3).sum() * (1.0 / 3.0)
        });
        // Each input's block, by finite differences with the other input held.
        let with = |i: usize, p: &Tensor<f64>| -> [Tensor<f64>; 2] {
            if i == 0 { [p.clone(), b.clone()] } else { [a.clone(), p.clone()] }
        };
        let eval_many = |g: &ManyFn, p: &[Tensor<f64>]| {
            let tape = Tape::new();
            let vars: Vec<_> = p.iter().map(|t| tape.var(t.clone())).collect();
            g(&tape, &vars).value()
        };
        let grad_many = |p: &[Tensor<f64>]| -> Vec<Tensor<f64>> {
            let tape = Tape::new();
            let vars: Vec<_> = p.iter().map(|t| tape.var(t.clone())).collect();
            let grads = s(&tape, &vars).backward();
            vars.iter().map(|v| grads[*v].clone()).collect()
        };

        let js = functional::jacobian_many(f, &xs);
        let (y, jv) = functional::jvp_many(f, &xs, &vs);
        let mut jv_exact = vec![0.0; y.numel()];
        for i in 0..2 {
            let fd = fd_jacobian(|p| eval_many(&f, &with(i, p)), &xs[i]);
            assert_close(&format!("jacobian_many[{i}] vs FD"), &js[i], &fd, FD_ATOL, FD_RTOL)?;
            for (t, d) in jv_exact.iter_mut().zip(contract_right(&js[i], &vs[i])) {
                *t += d;
            }
        }
        assert_close("jvp_many vs Σ J_i v_i", &jv, &Tensor::from_vec(jv_exact, y.shape()), EXACT, EXACT)?;
        let u = Tensor::randn(y.shape(), &mut rng);
        let (_, uj) = functional::vjp_many(f, &xs, &u);
        for i in 0..2 {
            let exact = Tensor::from_vec(contract_left(&u, &js[i]), xs[i].shape());
            assert_close(&format!("vjp_many[{i}] vs uᵀJ_i"), &uj[i], &exact, EXACT, EXACT)?;
        }

        let h = functional::hessian_many(s, &xs);
        let (_, hv) = functional::hvp_many(s, &xs, &vs);
        for i in 0..2 {
            let mut hv_exact = vec![0.0; xs[i].numel()];
            for j in 0..2 {
                // Block (i, j) is the FD Jacobian of ∂s/∂x_i with respect to x_j, and the
                // transpose of block (j, i).
                let fd = fd_jacobian(|p| grad_many(&with(j, p))[i].clone(), &xs[j]);
                assert_close(&format!("hessian_many[{i}][{j}] vs FD"), &h[i][j], &fd, FD_ATOL, FD_RTOL)?;
                let (ni, nj) = (xs[i].numel(), xs[j].numel());
                for r in 0..ni {
                    for q in 0..nj {
                        let (x1, x2) = (h[i][j].as_slice()[r * nj + q], h[j][i].as_slice()[q * ni + r]);
                        prop_assert!((x1 - x2).abs() <= EXACT, "H[{}][{}] not the transpose of H[{}][{}]", i, j, j, i);
                    }
                }
                for (t, d) in hv_exact.iter_mut().zip(contract_right(&h[i][j], &vs[j])) {
                    *t += d;
                }
            }
            assert_close(&format!("hvp_many[{i}] vs Σ_j H_ij v_j"), &hv[i], &Tensor::from_vec(hv_exact, xs[i].shape()), EXACT, EXACT)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Edge cases and errors.

#[test]
fn scalar_inputs_and_outputs_give_pytorch_shapes() {
    let x = Tensor::scalar(0.5);
    // Scalar in, vector out: the Jacobian has the output's shape.
    let j = functional::jacobian(
        |_t, x| Var::cat(&[x.reshape(&[1]).exp(), x.reshape(&[1]) * 3.0], 0),
        &x,
    );
    assert_eq!(j.shape(), &[2]);
    assert_eq!(j.to_vec(), vec![0.5f64.exp(), 3.0]);
    // Scalar in, scalar out.
    let h = functional::hessian(|_t, x| x.powi(3), &x);
    assert_eq!((h.shape(), h.item()), (&[][..], 3.0));
    // A one-element output of shape [1] has a Hessian of the input's shape twice, as in PyTorch.
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let h = functional::hessian(|_t, x| x.powi(3).sum().reshape(&[1]), &x);
    assert_eq!((h.shape(), h.to_vec()), (&[2, 2][..], vec![6.0, 0.0, 0.0, 12.0]));
    // ... and a Jacobian of shape [1, 2].
    let j = functional::jacobian(|_t, x| x.powi(3).sum().reshape(&[1]), &x);
    assert_eq!((j.shape(), j.to_vec()), (&[1, 2][..], vec![3.0, 12.0]));
}

#[test]
fn outputs_that_ignore_an_input_have_zero_derivatives() {
    // PyTorch's `strict=False`: zeros, not an error.
    let x = Tensor::from_vec(vec![1.0, 2.0], &[2]);
    let c = functional::function(|t, _x| t.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3])));
    let j = functional::jacobian(c, &x);
    assert_eq!((j.shape(), j.to_vec()), (&[3, 2][..], vec![0.0; 6]));
    let (y, jv) = functional::jvp(c, &x, &x);
    assert_eq!((y.to_vec(), jv.to_vec()), (vec![1.0, 2.0, 3.0], vec![0.0; 3]));
    let (_, g) = functional::vjp(c, &x, &Tensor::ones(&[3]));
    assert_eq!(g.to_vec(), vec![0.0; 2]);
    // Linear: a zero Hessian (the recorded gradient is a constant).
    let lin = functional::function(|_t, x: Var<f64>| (x * 3.0).sum());
    assert_eq!(functional::hessian(lin, &x).to_vec(), vec![0.0; 4]);
    assert_eq!(functional::hvp(lin, &x, &x).1.to_vec(), vec![0.0; 2]);
    // One input of two unused.
    let xs = [x.clone(), Tensor::from_vec(vec![5.0], &[1])];
    let js = functional::jacobian_many(|_t, xs| xs[0].square(), &xs);
    assert_eq!((js[1].shape(), js[1].to_vec()), (&[2, 1][..], vec![0.0; 2]));
    let h = functional::hessian_many(|_t, xs| xs[0].square().sum(), &xs);
    assert_eq!((h[0][1].shape(), h[1][1].to_vec()), (&[2, 1][..], vec![0.0]));
    // The input itself as the output: the identity.
    let j = functional::jacobian(|_t, x| x, &x);
    assert_eq!(j.to_vec(), vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn works_in_f32() {
    let x = Tensor::<f32>::from_vec(vec![0.5, -1.0], &[2]);
    let h = functional::hessian(|_t, x| x.powi(3).sum(), &x);
    assert_eq!(h.to_vec(), vec![3.0, 0.0, 0.0, -6.0]);
    let (_, jv) = functional::jvp(|_t, x| x.square(), &x, &Tensor::ones(&[2]));
    assert_eq!(jv.to_vec(), vec![1.0, -2.0]);
}

thread_local! {
    /// The location of the last panic on this thread (set by the hook installed below).
    static LAST_PANIC: RefCell<Option<(String, u32, String)>> = const { RefCell::new(None) };
}

#[test]
fn bad_arguments_panic_naming_the_function_and_shapes_at_the_callers_line() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let site = info.location().map(|l| (l.file().to_string(), l.line(), message));
        LAST_PANIC.with(|p| *p.borrow_mut() = site);
    }));
    let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]);
    let sq = functional::function(|_t, x| x.square());
    let total = functional::function(|_t, x| x.square().sum());
    let pair = functional::function_many(|_t, xs| (xs[0] * xs[1]).sum());
    let three = Tensor::zeros(&[3]);
    type Case<'a> = (&'a str, u32, Box<dyn FnOnce() + 'a>);
    let cases: Vec<Case<'_>> = vec![
        (
            "tapegrad: functional::hessian: f must return a single element (a scalar), but its output has shape [2]",
            line!(),
            Box::new(|| _ = functional::hessian(sq, &x)),
        ),
        (
            "tapegrad: functional::hvp: f must return a single element (a scalar), but its output has shape [2]",
            line!(),
            Box::new(|| _ = functional::hvp(sq, &x, &x)),
        ),
        (
            "tapegrad: functional::hessian_many: f must return a single element (a scalar), but its output has shape [2]",
            line!(),
            Box::new(|| _ = functional::hessian_many(|_t, xs| xs[0].square(), std::slice::from_ref(&x))),
        ),
        (
            "tapegrad: functional::jvp: v has shape [3], but x has shape [2]",
            line!(),
            Box::new(|| _ = functional::jvp(sq, &x, &three)),
        ),
        (
            "tapegrad: functional::vjp: u has shape [3], but f(x) has shape [2]",
            line!(),
            Box::new(|| _ = functional::vjp(sq, &x, &three)),
        ),
        (
            "tapegrad: functional::hvp: v has shape [3], but x has shape [2]",
            line!(),
            Box::new(|| _ = functional::hvp(total, &x, &three)),
        ),
        (
            "tapegrad: functional::vjp_many: u has shape [2], but f(xs) has shape []",
            line!(),
            Box::new(|| _ = functional::vjp_many(pair, &[x.clone(), x.clone()], &x)),
        ),
        (
            "tapegrad: functional::jvp_many: 2 inputs but 1 tangents",
            line!(),
            Box::new(|| _ = functional::jvp_many(pair, &[x.clone(), x.clone()], std::slice::from_ref(&x))),
        ),
        (
            "tapegrad: functional::hvp_many: vs[1] has shape [3], but xs[1] has shape [2]",
            line!(),
            Box::new(|| _ = functional::hvp_many(pair, &[x.clone(), x.clone()], &[x.clone(), three.clone()])),
        ),
    ];
    let mut wrong = Vec::new();
    for (expected, line, case) in cases {
        LAST_PANIC.with(|p| p.borrow_mut().take());
        let panicked = catch_unwind(AssertUnwindSafe(case)).is_err();
        let site = LAST_PANIC.with(|p| p.borrow_mut().take());
        match site {
            Some((file, at, message)) if panicked => {
                if !message.starts_with(expected) {
                    wrong.push(format!("expected {expected:?}, got {message:?}"));
                }
                // The closure's body is on the line after `line!()`.
                if !file.ends_with("functional.rs") || !file.starts_with("tests") || at != line + 1 {
                    wrong.push(format!(
                        "{expected:?}: reported at {file}:{at}, not tests/functional.rs:{}",
                        line + 1
                    ));
                }
            }
            _ => wrong.push(format!("{expected:?}: no panic")),
        }
    }
    std::panic::set_hook(previous);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// gradcheck::check_directions

mod directions {
    use std::cell::Cell;

    use tapegrad::gradcheck::{self, DirectionCheck, Tolerance};
    use tapegrad::rand::{SeedableRng, rngs::StdRng};
    use tapegrad::{Tape, Tensor, Var};

    fn inputs(seed: u64) -> [Tensor<f64>; 2] {
        let mut rng = StdRng::seed_from_u64(seed);
        [Tensor::randn(&[6, 5], &mut rng), Tensor::randn(&[5, 3], &mut rng)]
    }

    #[test]
    fn passes_right_gradients_in_both_modes() {
        let config = DirectionCheck {
            directions: 12,
            jvp: true,
            ..DirectionCheck::default()
        };
        let xs = inputs(3);
        gradcheck::check_directions(
            |_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].matmul(&xs[1]).tanh().softmax(1),
            &xs,
            config,
        )
        .unwrap();
        gradcheck::check_directions(
            |_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].sin().logsumexp(1, false).sum() * xs[1].square().mean(),
            &xs,
            config,
        )
        .unwrap();
        // An input the output ignores: zero on both sides.
        gradcheck::check_directions(|_t: &Tape<f64>, xs: &[Var<f64>]| xs[0].exp(), &xs, config).unwrap();
    }

    #[test]
    fn catches_a_gradient_cut_with_detach_and_names_the_input() {
        let xs = inputs(4);
        // Σ (A·B)² with A detached in one factor: d/dA is half what it should be.
        let err = gradcheck::check_directions(
            |_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0].detach().matmul(&xs[1]) * xs[0].matmul(&xs[1])).sum(),
            &xs,
            DirectionCheck::default(),
        )
        .unwrap_err();
        assert_eq!((err.direction, err.input, err.via, err.seed), (0, 0, "vjp", 0));
        assert!(
            (err.numeric - 2.0 * err.analytic).abs() <= 1e-6 * err.numeric.abs(),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("gradcheck: along random direction 0 (seed 0) of input 0: uᵀJv from vjp is"),
            "{text}"
        );

        // Only input 1's gradient cut: input 0 passes, input 1 is reported.
        let err = gradcheck::check_directions(
            |_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0].tanh().matmul(&xs[1]) * xs[1].detach().sum()).sum(),
            &xs,
            DirectionCheck {
                seed: 9,
                ..DirectionCheck::default()
            },
        )
        .unwrap_err();
        assert_eq!((err.direction, err.input, err.seed), (0, 1, 9));
        // The same with the element-by-element checker, for comparison.
        let full = gradcheck::check(
            |_t: &Tape<f64>, xs: &[Var<f64>]| (xs[0].tanh().matmul(&xs[1]) * xs[1].detach().sum()).sum(),
            &xs,
        )
        .unwrap_err();
        assert_eq!(full.input, 1);
    }

    #[test]
    fn costs_two_evaluations_per_direction_and_input() {
        let mut rng = StdRng::seed_from_u64(5);
        let x = Tensor::randn(&[100, 100], &mut rng);
        let w = Tensor::randn(&[100, 10], &mut rng);
        let calls = Cell::new(0);
        let f = gradcheck::function(|_t, xs| {
            calls.set(calls.get() + 1);
            xs[0].matmul(&xs[1]).tanh().sum()
        });
        let config = DirectionCheck {
            directions: 5,
            ..DirectionCheck::default()
        };
        gradcheck::check_directions(f, &[x, w], config).unwrap();
        // One recording, then 2 evaluations × 2 inputs × 5 directions (`check` would need 22,000).
        assert_eq!(calls.get(), 1 + 2 * 2 * 5);
    }

    #[test]
    fn the_seed_fixes_the_directions_and_tolerances_apply() {
        let xs = inputs(6);
        let f = gradcheck::function(|_t, xs| (xs[0] * xs[0].detach()).sum() + xs[1].sum());
        let run = |config| gradcheck::check_directions(f, &xs, config).unwrap_err();
        let (a, b) = (run(DirectionCheck::default()), run(DirectionCheck::default()));
        assert_eq!(a, b);
        let c = run(DirectionCheck {
            seed: 1,
            ..DirectionCheck::default()
        });
        assert_ne!(a.analytic, c.analytic);
        // A tolerance wide enough for a factor of 2 lets the wrong gradient through.
        let loose = Tolerance {
            rtol: 0.6,
            ..Tolerance::default()
        };
        gradcheck::check_directions(
            f,
            &xs,
            DirectionCheck {
                tol: loose,
                ..DirectionCheck::default()
            },
        )
        .unwrap();
    }
}
