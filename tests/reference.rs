//! Every op against PyTorch float64 reference values (`tests/data/torch_reference.json`, format in
//! the reference README): forward values, vector-Jacobian products for a given seed, and
//! Hessian-vector products computed with recorded (differentiable) gradients.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{close, compare, load_json, tensor, usizes};
use serde_json::Value;
use tapegrad::{Tape, Tensor, Var, loss};

fn reference() -> Value {
    load_json("torch_reference.json")
}

fn arg_usize(args: &Value, name: &str) -> usize {
    args[name]
        .as_u64()
        .unwrap_or_else(|| panic!("missing integer argument {name:?} in {args}")) as usize
}

/// Builds the op named `op` on `inputs`; `None` for an op name this test does not know.
fn build<'t>(op: &str, args: &Value, x: &[Var<'t, f64>]) -> Option<Var<'t, f64>> {
    let axis = || arg_usize(args, "axis");
    let keepdim = || {
        args["keepdim"]
            .as_bool()
            .expect("missing boolean argument keepdim")
    };
    Some(match op {
        "neg" => -x[0],
        "exp" => x[0].exp(),
        "ln" => x[0].ln(),
        "sqrt" => x[0].sqrt(),
        "abs" => x[0].abs(),
        "tanh" => x[0].tanh(),
        "sigmoid" => x[0].sigmoid(),
        "relu" => x[0].relu(),
        "sin" => x[0].sin(),
        "cos" => x[0].cos(),
        "powf" => x[0].powf(args["p"].as_f64().expect("missing argument p")),
        "powi" => x[0].powi(args["n"].as_i64().expect("missing argument n") as i32),
        "add" => x[0] + x[1],
        "sub" => x[0] - x[1],
        "mul" => x[0] * x[1],
        "div" => x[0] / x[1],
        "sum" => x[0].sum(),
        "mean" => x[0].mean(),
        "sum_axis" => x[0].sum_axis(axis(), keepdim()),
        "mean_axis" => x[0].mean_axis(axis(), keepdim()),
        "max_axis" => x[0].max_axis(axis(), keepdim()),
        "matmul" => x[0].matmul(&x[1]),
        "reshape" => x[0].reshape(&usizes(&args["shape"])),
        "transpose" => x[0].transpose(arg_usize(args, "a0"), arg_usize(args, "a1")),
        "broadcast_to" => x[0].broadcast_to(&usizes(&args["shape"])),
        "softmax" => x[0].softmax(axis()),
        "log_softmax" => x[0].log_softmax(axis()),
        "cross_entropy" => loss::cross_entropy(x[0], &usizes(&args["targets"])),
        "mse" => loss::mse(x[0], x[1]),
        _ => return None,
    })
}

/// Runs one `ops` case; returns `false` for an unknown op name.
fn check_op_case(failures: &mut Vec<String>, index: usize, case: &Value) -> bool {
    let op = case["op"].as_str().expect("case without an op name");
    let label = format!("op {op:?} (ops case {index})");
    let inputs: Vec<Tensor<f64>> = case["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(tensor)
        .collect();
    let expected_out = tensor(&case["output"]);
    let seed = tensor(&case["seed_grad"]);
    let expected_grads = case["grads"].as_array().expect("grads");
    if expected_grads.len() != inputs.len() {
        failures.push(format!(
            "{label}: {} grads for {} inputs",
            expected_grads.len(),
            inputs.len()
        ));
    }

    let tape = Tape::<f64>::new();
    let vars: Vec<Var<'_, f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let Some(out) = build(op, &case["args"], &vars) else {
        failures.push(format!(
            "{label}: unknown op name; add it to build() in tests/reference.rs"
        ));
        return false;
    };
    compare(failures, &format!("{label}: output"), &out.value(), &expected_out);
    let grads = out.backward_with_seed(seed);
    for (i, (x, want)) in vars.iter().zip(expected_grads).enumerate() {
        let what = format!("{label}: gradient of input {i}");
        match grads.wrt(*x) {
            Some(got) => compare(failures, &what, got, &tensor(want)),
            None => failures.push(format!("{what}: missing")),
        }
    }
    true
}

#[test]
fn every_op_matches_pytorch_values_and_vector_jacobian_products() {
    let reference = reference();
    let cases = reference["ops"].as_array().expect("ops");
    assert!(!cases.is_empty(), "no ops cases in the reference file");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (index, case) in cases.iter().enumerate() {
        // A panic in one case is reported with the others instead of hiding them.
        let run = catch_unwind(AssertUnwindSafe(|| {
            let mut local = Vec::new();
            let known = check_op_case(&mut local, index, case);
            (known, local)
        }));
        match run {
            Ok((known, local)) => {
                checked += usize::from(known);
                failures.extend(local);
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("op {:?} (ops case {index}): panicked: {msg}", case["op"]));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked,
        cases.len(),
        "every ops case of the reference file must be checked"
    );
}

/// The scalar functions of the `hvp` cases, built from var ops.
fn hvp_function<'t>(name: &str, x: Var<'t, f64>) -> Option<Var<'t, f64>> {
    Some(match name {
        "sum(tanh(x)^3 * x)" => (x.tanh().powi(3) * x).sum(),
        "sum(exp(x) * sin(x))" => (x.exp() * x.sin()).sum(),
        "rosenbrock" => {
            // sum_i 100 (x[i+1] - x[i]²)² + (1 - x[i])², i = 0..n-2.
            let n = x.shape()[0];
            let head = x.narrow(0, 0, n - 1);
            let tail = x.narrow(0, 1, n - 1);
            ((tail - head.powi(2)).powi(2) * 100.0 + (1.0 - head).powi(2)).sum()
        }
        "logsumexp-ish: ln(sum(exp(x)))" => x.exp().sum().ln(),
        _ => return None,
    })
}

#[test]
fn hessian_vector_products_match_pytorch() {
    let reference = reference();
    let cases = reference["hvp"].as_array().expect("hvp");
    assert!(!cases.is_empty(), "no hvp cases in the reference file");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (index, case) in cases.iter().enumerate() {
        let name = case["function"].as_str().expect("function name");
        let label = format!("hvp {name:?} (hvp case {index})");
        let tape = Tape::<f64>::new();
        let x = tape.var(tensor(&case["x"]));
        let Some(f) = hvp_function(name, x) else {
            failures.push(format!("{label}: unknown function; add it to hvp_function()"));
            continue;
        };
        let value = case["value"].as_f64().expect("value");
        if !close(f.item(), value) {
            failures.push(format!("{label}: value {:e}, expected {value:e}", f.item()));
        }
        let grad = tensor(&case["grad"]);
        // Recorded gradient, then the Hessian-vector product as the gradient of <grad, v>.
        let g = f.grad(&[x])[0];
        compare(
            &mut failures,
            &format!("{label}: recorded grad"),
            &g.value(),
            &grad,
        );
        let v = tape.constant(tensor(&case["v"]));
        let hv = (g * v).sum().grad(&[x])[0];
        compare(
            &mut failures,
            &format!("{label}: hvp"),
            &hv.value(),
            &tensor(&case["hvp"]),
        );
        // The eager first-order pass must agree too.
        let eager = f.backward();
        compare(
            &mut failures,
            &format!("{label}: backward grad"),
            &eager[x],
            &grad,
        );
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        checked,
        cases.len(),
        "every hvp case of the reference file must be checked"
    );
}
