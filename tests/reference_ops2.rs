//! The ops of DESIGN.md section 2b against PyTorch float64 reference values
//! (`tests/data/torch_ops2_reference.json`, format in the reference README): for every case the
//! forward values of each output, the gradients of L = Σ_k sum(seeds_k ⊙ outputs_k) (recorded with
//! `Var::grad` and eager with `backward`), and the Hessian-vector products, the recorded gradient
//! of Σ_i grads_i · v_i.
//!
//! Values and gradients must agree to 1e-10, HVPs to 1e-9, relative to max(1, |expected|); infinite
//! expected values must match exactly. Each family test runs the cases of its ops; an unknown op
//! name fails its case loudly, and `every_case_belongs_to_exactly_one_family` makes sure that the
//! families together run all 73 cases.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{load_json, tensor, usizes};
use serde_json::Value;
use tapegrad::{Tape, Tensor, Var};

/// Tolerance of values and gradients, relative to max(1, |expected|).
const TOL_GRAD: f64 = 1e-10;
/// Tolerance of Hessian-vector products, relative to max(1, |expected|).
const TOL_HVP: f64 = 1e-9;
/// The number of cases in the reference file.
const CASES: usize = 73;

/// The op families, each with the number of reference cases of its ops.
const FAMILIES: &[(&str, &[&str], usize)] = &[
    ("join", &["cat", "stack", "split", "chunk"], 7),
    (
        "shape",
        &[
            "squeeze",
            "unsqueeze",
            "permute",
            "flatten",
            "flip",
            "pad",
            "repeat",
        ],
        12,
    ),
    ("index", &["index_select", "gather", "scatter_add"], 5),
    ("mask", &["masked_fill", "where_cond", "tril", "triu"], 9),
    ("clamp", &["clamp", "maximum", "minimum"], 6),
    (
        "reduce",
        &[
            "min_axis",
            "logsumexp",
            "sum_axes",
            "mean_axes",
            "var_axis",
            "std_axis",
            "cumsum",
        ],
        15,
    ),
    (
        "activation",
        &[
            "log1p",
            "expm1",
            "square",
            "rsqrt",
            "softplus",
            "silu",
            "gelu",
            "gelu_tanh",
            "leaky_relu",
            "elu",
        ],
        11,
    ),
    ("einsum", &["einsum"], 6),
    ("composite", &["causal_attention", "lstm_gates"], 2),
];

fn reference() -> Value {
    load_json("torch_ops2_reference.json")
}

fn cases(reference: &Value) -> &[Value] {
    reference["cases"]
        .as_array()
        .expect("no list \"cases\" in torch_ops2_reference.json")
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

fn arg<'a>(args: &'a Value, name: &str) -> &'a Value {
    let v = &args[name];
    assert!(!v.is_null(), "missing argument {name:?} in {args}");
    v
}

fn arg_usize(args: &Value, name: &str) -> usize {
    arg(args, name)
        .as_u64()
        .unwrap_or_else(|| panic!("argument {name:?} is not a non-negative integer in {args}")) as usize
}

fn arg_i64(args: &Value, name: &str) -> i64 {
    arg(args, name)
        .as_i64()
        .unwrap_or_else(|| panic!("argument {name:?} is not an integer in {args}"))
}

fn arg_bool(args: &Value, name: &str) -> bool {
    arg(args, name)
        .as_bool()
        .unwrap_or_else(|| panic!("argument {name:?} is not a boolean in {args}"))
}

fn arg_str<'a>(args: &'a Value, name: &str) -> &'a str {
    arg(args, name)
        .as_str()
        .unwrap_or_else(|| panic!("argument {name:?} is not a string in {args}"))
}

/// A float argument: a number, or one of the strings "inf", "-inf", "nan".
fn arg_f64(args: &Value, name: &str) -> f64 {
    let v = arg(args, name);
    match v {
        Value::Number(n) => n.as_f64().expect("a float"),
        Value::String(s) => match s.as_str() {
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            "nan" => f64::NAN,
            other => panic!("argument {name:?}: unknown float {other:?}"),
        },
        other => panic!("argument {name:?} is not a float: {other}"),
    }
}

fn arg_usizes(args: &Value, name: &str) -> Vec<usize> {
    usizes(arg(args, name))
}

/// An index tensor of `extra`: `{"shape", "index"}`.
fn index_tensor(extra: &Value, name: &str) -> Tensor<usize> {
    let t = arg(extra, name);
    Tensor::from_vec(usizes(&t["index"]), &usizes(&t["shape"]))
}

/// A mask of `extra`: `{"shape", "bool"}`.
fn mask_tensor(extra: &Value, name: &str) -> Tensor<bool> {
    let t = arg(extra, name);
    let bits: Vec<bool> = t["bool"]
        .as_array()
        .unwrap_or_else(|| panic!("mask {name:?} without a \"bool\" list: {t}"))
        .iter()
        .map(|b| {
            b.as_bool()
                .unwrap_or_else(|| panic!("mask {name:?}: not a boolean: {b}"))
        })
        .collect();
    Tensor::from_vec(bits, &usizes(&t["shape"]))
}

// ---------------------------------------------------------------------------------------------
// The ops
// ---------------------------------------------------------------------------------------------

/// The outputs of `op` on `x`; `None` for an op name this test does not know.
fn build<'t>(op: &str, args: &Value, extra: &Value, x: &[Var<'t, f64>]) -> Option<Vec<Var<'t, f64>>> {
    let axis = || arg_usize(args, "axis");
    let keepdim = || arg_bool(args, "keepdim");
    let one = |v: Var<'t, f64>| Some(vec![v]);
    match op {
        // Join and split.
        "cat" => one(Var::cat(x, axis())),
        "stack" => one(Var::stack(x, axis())),
        "split" => Some(x[0].split(&arg_usizes(args, "sizes"), axis())),
        "chunk" => Some(x[0].chunk(arg_usize(args, "chunks"), axis())),
        // Shape.
        "squeeze" => one(x[0].squeeze(axis())),
        "unsqueeze" => one(x[0].unsqueeze(axis())),
        "permute" => one(x[0].permute(&arg_usizes(args, "axes"))),
        "flatten" => one(x[0].flatten(arg_usize(args, "start"), arg_usize(args, "end"))),
        "flip" => one(x[0].flip(&arg_usizes(args, "axes"))),
        "pad" => {
            let pads: Vec<(usize, usize)> = arg(args, "pads")
                .as_array()
                .expect("pads: a list of pairs")
                .iter()
                .map(|p| {
                    let p = usizes(p);
                    assert_eq!(p.len(), 2, "pads: {p:?} is not a (before, after) pair");
                    (p[0], p[1])
                })
                .collect();
            one(x[0].pad(&pads, arg_f64(args, "value")))
        }
        "repeat" => one(x[0].repeat(&arg_usizes(args, "reps"))),
        // Indexing.
        "index_select" => one(x[0].index_select(axis(), &index_tensor(extra, "index"))),
        "gather" => one(x[0].gather(axis(), &index_tensor(extra, "index"))),
        "scatter_add" => one(x[0].scatter_add(axis(), &index_tensor(extra, "index"), x[1])),
        // Masks.
        "masked_fill" => {
            let y = x[0].masked_fill(&mask_tensor(extra, "mask"), arg_f64(args, "value"));
            match args.get("then").map(|t| t.as_str().expect("then: a string")) {
                None => one(y),
                Some("exp") => one(y.exp()),
                Some(other) => panic!("masked_fill: unknown \"then\" op {other:?}"),
            }
        }
        "where_cond" => one(Var::where_cond(&mask_tensor(extra, "cond"), x[0], x[1])),
        "tril" => one(x[0].tril(arg_i64(args, "diagonal"))),
        "triu" => one(x[0].triu(arg_i64(args, "diagonal"))),
        // Clamping.
        "clamp" => one(x[0].clamp(arg_f64(args, "min"), arg_f64(args, "max"))),
        "maximum" => one(x[0].maximum(x[1])),
        "minimum" => one(x[0].minimum(x[1])),
        // Reductions.
        "min_axis" => one(x[0].min_axis(axis(), keepdim())),
        "logsumexp" => one(x[0].logsumexp(axis(), keepdim())),
        "sum_axes" => one(x[0].sum_axes(&arg_usizes(args, "axes"), keepdim())),
        "mean_axes" => one(x[0].mean_axes(&arg_usizes(args, "axes"), keepdim())),
        "var_axis" => one(x[0].var_axis(axis(), arg_usize(args, "correction"), keepdim())),
        "std_axis" => one(x[0].std_axis(axis(), arg_usize(args, "correction"), keepdim())),
        "cumsum" => one(x[0].cumsum(axis())),
        // Activations.
        "log1p" => one(x[0].log1p()),
        "expm1" => one(x[0].expm1()),
        "square" => one(x[0].square()),
        "rsqrt" => one(x[0].rsqrt()),
        "softplus" => one(x[0].softplus()),
        "silu" => one(x[0].silu()),
        "gelu" => one(x[0].gelu()),
        "gelu_tanh" => one(x[0].gelu_tanh()),
        "leaky_relu" => one(x[0].leaky_relu(arg_f64(args, "slope"))),
        "elu" => one(x[0].elu(arg_f64(args, "alpha"))),
        // Einsum.
        "einsum" => one(Var::einsum(arg_str(args, "equation"), x)),
        // Composites.
        "causal_attention" => one(causal_attention(x[0], x[1], x[2], extra)),
        "lstm_gates" => one(lstm_gates(x[0], x[1])),
        _ => None,
    }
}

/// softmax(q·kᵀ / 2 with the future masked out)·v, for q, k, v of shape [B, T, D] (D = 4, so the
/// scale 1/√D is 1/2). The mask is built from `arange` and checked against the case's own.
fn causal_attention<'t>(q: Var<'t, f64>, k: Var<'t, f64>, v: Var<'t, f64>, extra: &Value) -> Var<'t, f64> {
    let t = q.shape()[1];
    let rows = Tensor::<usize>::arange(t).reshape(&[t, 1]);
    let cols = Tensor::<usize>::arange(t).reshape(&[1, t]);
    // Key j is masked for query i when j > i.
    let mask = cols.gt(&rows);
    assert_eq!(
        mask,
        mask_tensor(extra, "mask"),
        "causal_attention: the arange mask differs from the reference's"
    );
    let scores = q.matmul(&k.transpose(1, 2)) / 2.0;
    let attn = scores.masked_fill(&mask, f64::NEG_INFINITY).softmax(2);
    attn.matmul(&v)
}

/// One LSTM cell step from the gate pre-activations `gates` [N, 4H] (order i, f, g, o) and the
/// previous cell state `c_prev` [N, H]: c = σ(f)·c_prev + σ(i)·tanh(g), h = σ(o)·tanh(c); the
/// output is cat([h, c], 1), [N, 2H].
fn lstm_gates<'t>(gates: Var<'t, f64>, c_prev: Var<'t, f64>) -> Var<'t, f64> {
    let parts = gates.chunk(4, 1);
    let (i, f, g, o) = (
        parts[0].sigmoid(),
        parts[1].sigmoid(),
        parts[2].tanh(),
        parts[3].sigmoid(),
    );
    let c = f * c_prev + i * g;
    let h = o * c.tanh();
    Var::cat(&[h, c], 1)
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// `|got - want| <= tol * max(1, |want|)`; an infinite `want` must be matched exactly.
fn close(got: f64, want: f64, tol: f64) -> bool {
    if want.is_infinite() {
        got == want
    } else {
        (got - want).abs() <= tol * want.abs().max(1.0)
    }
}

/// Compares shapes and elements; one message per mismatch.
fn compare(failures: &mut Vec<String>, what: &str, got: &Tensor<f64>, want: &Tensor<f64>, tol: f64) {
    if got.shape() != want.shape() {
        failures.push(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
        return;
    }
    for (i, (&g, &w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        if !close(g, w, tol) {
            failures.push(format!(
                "{what}[{i}] (row-major): got {g:e}, expected {w:e}, diff {:e}",
                g - w
            ));
        }
    }
}

fn tensor_list(case: &Value, key: &str) -> Vec<Tensor<f64>> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("case without a list {key:?}"))
        .iter()
        .map(tensor)
        .collect()
}

/// Runs one case; pushes a message for every mismatch, panics on an unknown op.
fn check_case(failures: &mut Vec<String>, label: &str, case: &Value) {
    let op = case["op"].as_str().expect("case without an op name");
    let inputs = tensor_list(case, "inputs");
    let want_outputs = tensor_list(case, "outputs");
    let seeds = tensor_list(case, "seeds");
    let want_grads = tensor_list(case, "grads");
    let vs = tensor_list(case, "v");
    let want_hvp = tensor_list(case, "hvp");
    assert_eq!(seeds.len(), want_outputs.len(), "{label}: one seed per output");
    assert_eq!(want_grads.len(), inputs.len(), "{label}: one gradient per input");
    assert_eq!(vs.len(), inputs.len(), "{label}: one v per input");
    assert_eq!(want_hvp.len(), inputs.len(), "{label}: one hvp per input");

    let tape = Tape::<f64>::new();
    let x: Vec<Var<'_, f64>> = inputs.iter().map(|t| tape.var(t.clone())).collect();
    let outputs = build(op, &case["args"], &case["extra"], &x)
        .unwrap_or_else(|| panic!("{label}: unknown op name; add it to build() in tests/reference_ops2.rs"));
    assert_eq!(
        outputs.len(),
        want_outputs.len(),
        "{label}: {} outputs, the reference has {}",
        outputs.len(),
        want_outputs.len()
    );
    for (k, (y, want)) in outputs.iter().zip(&want_outputs).enumerate() {
        compare(
            failures,
            &format!("{label}: output {k}"),
            &y.value(),
            want,
            TOL_GRAD,
        );
    }

    // L = Σ_k sum(seeds_k ⊙ outputs_k).
    let loss = outputs
        .iter()
        .zip(&seeds)
        .map(|(y, s)| (*y * tape.constant(s.clone())).sum())
        .reduce(|a, b| a + b)
        .expect("at least one output");

    // Recorded (differentiable) gradients.
    let grads = loss.grad(&x);
    for (i, (g, want)) in grads.iter().zip(&want_grads).enumerate() {
        compare(
            failures,
            &format!("{label}: recorded gradient of input {i}"),
            &g.value(),
            want,
            TOL_GRAD,
        );
    }

    // Hessian-vector products: the gradient of Σ_i grads_i · v_i.
    let dot = grads
        .iter()
        .zip(&vs)
        .map(|(g, v)| (*g * tape.constant(v.clone())).sum())
        .reduce(|a, b| a + b)
        .expect("at least one input");
    let hvp = dot.grad(&x);
    for (i, (h, want)) in hvp.iter().zip(&want_hvp).enumerate() {
        compare(
            failures,
            &format!("{label}: hvp of input {i}"),
            &h.value(),
            want,
            TOL_HVP,
        );
    }

    // The eager first-order pass must agree too; for one output also seeded directly.
    let mut eager = vec![loss.backward()];
    if outputs.len() == 1 {
        eager.push(outputs[0].backward_with_seed(seeds[0].clone()));
    }
    for (pass, g) in ["backward", "backward_with_seed"].iter().zip(&eager) {
        for (i, (xi, want)) in x.iter().zip(&want_grads).enumerate() {
            let what = format!("{label}: {pass} gradient of input {i}");
            match g.wrt(*xi) {
                Some(got) => compare(failures, &what, got, want, TOL_GRAD),
                None => failures.push(format!("{what}: missing")),
            }
        }
    }
}

/// Runs every case whose op belongs to `family`; asserts that there were as many as `FAMILIES`
/// says and that all agree with PyTorch.
fn run_family(family: &str) {
    let &(_, ops, expected) = FAMILIES
        .iter()
        .find(|(name, _, _)| *name == family)
        .unwrap_or_else(|| panic!("no family {family:?}"));
    let reference = reference();
    let mut failures = Vec::new();
    let mut run = 0;
    for (index, case) in cases(&reference).iter().enumerate() {
        let op = case["op"].as_str().expect("case without an op name");
        if !ops.contains(&op) {
            continue;
        }
        let label = format!("op {op:?} (case {index}, args {})", case["args"]);
        // A panic in one case is reported with the others instead of hiding them.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut local = Vec::new();
            check_case(&mut local, &label, case);
            local
        }));
        match result {
            Ok(local) => failures.extend(local),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                // Panics of check_case name the case themselves; others (in the library) do not.
                if msg.starts_with(&label) {
                    failures.push(msg);
                } else {
                    failures.push(format!("{label}: panicked: {msg}"));
                }
            }
        }
        run += 1;
    }
    assert!(
        failures.is_empty(),
        "{family}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(run, expected, "{family}: ran {run} cases, expected {expected}");
}

#[test]
fn every_case_belongs_to_exactly_one_family() {
    let reference = reference();
    let cases = cases(&reference);
    assert_eq!(cases.len(), CASES, "the reference file should have {CASES} cases");
    let mut per_family = vec![0usize; FAMILIES.len()];
    for (index, case) in cases.iter().enumerate() {
        let op = case["op"].as_str().expect("case without an op name");
        let owners: Vec<usize> = (0..FAMILIES.len())
            .filter(|&f| FAMILIES[f].1.contains(&op))
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "op {op:?} (case {index}) belongs to {} families; every case must be run exactly once",
            owners.len()
        );
        per_family[owners[0]] += 1;
    }
    for (f, &(name, _, expected)) in FAMILIES.iter().enumerate() {
        assert_eq!(
            per_family[f], expected,
            "family {name}: {} cases in the file, expected {expected}",
            per_family[f]
        );
    }
    let total: usize = FAMILIES.iter().map(|f| f.2).sum();
    assert_eq!(total, CASES, "the families must cover all {CASES} cases");
}

#[test]
fn join_and_split_match_pytorch() {
    run_family("join");
}

#[test]
fn shape_ops_match_pytorch() {
    run_family("shape");
}

#[test]
fn index_ops_match_pytorch() {
    run_family("index");
}

#[test]
fn mask_ops_match_pytorch() {
    run_family("mask");
}

#[test]
fn clamp_maximum_minimum_match_pytorch() {
    run_family("clamp");
}

#[test]
fn reductions_match_pytorch() {
    run_family("reduce");
}

#[test]
fn activations_match_pytorch() {
    run_family("activation");
}

#[test]
fn einsum_matches_pytorch() {
    run_family("einsum");
}

#[test]
fn causal_attention_and_lstm_gates_match_pytorch() {
    run_family("composite");
}
