//! Reading the PyTorch reference files in `tests/data` and comparing against them, shared by the
//! reference, optimizer, convolution and checkpoint tests.

// Every test crate compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod ops2;

use std::path::PathBuf;

use serde_json::Value;
use tapegrad::Tensor;

/// Relative tolerance of every comparison with PyTorch: the maths is the same, only the
/// summation order differs.
pub const REL: f64 = 1e-10;

/// Absolute floor. A purely relative test fails whenever one side is exactly 0 and the other is
/// a rounding residue such as 1e-17 (an element whose true value is 0 but is computed as a
/// difference or a sum in another order, e.g. a softmax gradient, `x - x`, a relu mask times
/// an upstream value). Every non-zero reference value here is O(0.01..100), so 1e-12 cannot hide
/// a real error.
pub const ABS: f64 = 1e-12;

/// `a` and `b` agree to [`REL`] relative, with the [`ABS`] floor.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= REL * a.abs().max(b.abs()) + ABS
}

/// The path of a file in `tests/data`.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A JSON file of `tests/data`, parsed.
pub fn load_json(name: &str) -> Value {
    let path = data_path(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

/// An array of non-negative integers (a shape, a list of indices).
pub fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of integers, got {v}"))
        .iter()
        .map(|d| {
            d.as_u64()
                .unwrap_or_else(|| panic!("expected an integer, got {d}")) as usize
        })
        .collect()
}

/// A number or (nested) arrays of numbers, flattened in row-major order.
pub fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(numbers).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or_else(|| panic!("expected a number, got {n}"))],
        other => panic!("expected a number or an array of numbers, got {other}"),
    }
}

/// A tensor written as `{"shape": [...], "data": [...]}` (data in row-major order).
pub fn tensor(v: &Value) -> Tensor<f64> {
    assert!(v.is_object(), "expected a tensor {{shape, data}}, got {v}");
    Tensor::from_vec(numbers(&v["data"]), &usizes(&v["shape"]))
}

/// An array of tensors.
pub fn tensors(v: &Value) -> Vec<Tensor<f64>> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list of tensors, got {v}"))
        .iter()
        .map(tensor)
        .collect()
}

/// The non-empty list of cases under `key`.
pub fn cases<'a>(reference: &'a Value, key: &str) -> &'a [Value] {
    let list = reference[key]
        .as_array()
        .unwrap_or_else(|| panic!("no list {key:?} in the reference file"));
    assert!(!list.is_empty(), "no {key} cases in the reference file");
    list
}

/// Compares shape and elements; pushes one message per mismatch (naming `what` and the element).
pub fn compare(failures: &mut Vec<String>, what: &str, got: &Tensor<f64>, want: &Tensor<f64>) {
    if got.shape() != want.shape() {
        failures.push(format!(
            "{what}: shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
        return;
    }
    for (i, (&g, &w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
        if !close(g, w) {
            failures.push(format!(
                "{what}[{i}] (row-major): got {g:e}, expected {w:e}, diff {:e}",
                g - w
            ));
        }
    }
}
