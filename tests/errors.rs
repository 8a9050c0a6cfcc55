//! Shape and argument errors: each panics with a message naming the operation and the sizes,
//! reported at the caller's line (the public entry points are `#[track_caller]`).

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use tapegrad::{Param, Tape, Tensor, loss};

fn m(rows: usize, cols: usize) -> Tensor<f64> {
    Tensor::zeros(&[rows, cols])
}

#[test]
#[should_panic(expected = "tapegrad: add: shapes [2, 3] and [4] cannot be broadcast together")]
fn add_of_incompatible_shapes() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)) + tape.var(Tensor::zeros(&[4]));
}

#[test]
#[should_panic(expected = "tapegrad: mul: shapes [3, 2] and [2, 3] cannot be broadcast together")]
fn mul_of_incompatible_shapes() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(3, 2)) * tape.constant(m(2, 3));
}

#[test]
#[should_panic(expected = "tapegrad: matmul: inner dimensions differ: shapes [2, 3] and [4, 5]")]
fn matmul_inner_mismatch() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).matmul(&tape.var(m(4, 5)));
}

#[test]
#[should_panic(
    expected = "tapegrad: matmul_t: inner dimensions differ: shapes [2, 3] and [5, 4]ᵀ give 2x3 @ 4x5"
)]
fn matmul_t_inner_mismatch() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).matmul_t(&tape.var(m(5, 4)));
}

#[test]
#[should_panic(expected = "tapegrad: matmul: both operands need rank 2 or more")]
fn matmul_of_rank_1() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0]).matmul(&tape.var(m(2, 2)));
}

#[test]
#[should_panic(expected = "tapegrad: matmul: shapes [2] and [3] cannot be broadcast together")]
fn matmul_batch_mismatch() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros(&[2, 3, 4]));
    let b = tape.var(Tensor::zeros(&[3, 4, 5]));
    let _ = a.matmul(&b);
}

#[test]
#[should_panic(expected = "tapegrad: reshape: cannot reshape [2, 3] (6 elements) to [4] (4 elements)")]
fn reshape_to_wrong_numel() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).reshape(&[4]);
}

#[test]
#[should_panic(expected = "tapegrad: transpose: axis 2 is out of range for shape [2, 3] (rank 2)")]
fn transpose_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).transpose(0, 2);
}

#[test]
#[should_panic(expected = "tapegrad: sum_axis: axis 3 is out of range for shape [2, 3] (rank 2)")]
fn sum_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).sum_axis(3, false);
}

#[test]
#[should_panic(expected = "axis 2 is out of range for shape [2, 3] (rank 2)")]
fn mean_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).mean_axis(2, true);
}

#[test]
#[should_panic(expected = "tapegrad: max_axis: axis 2 is out of range for shape [2, 3] (rank 2)")]
fn max_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 3)).max_axis(2, false);
}

#[test]
#[should_panic(expected = "tapegrad: max_axis: axis 1 of shape [2, 0] is empty")]
fn max_axis_of_an_empty_axis() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 0)).max_axis(1, false);
}

#[test]
#[should_panic(expected = "tapegrad: softmax: axis 1 is out of range for shape [3] (rank 1)")]
fn softmax_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0, 3.0]).softmax(1);
}

#[test]
#[should_panic(expected = "tapegrad: narrow: range 2..5 is out of bounds for axis 0 of shape [4]")]
fn narrow_out_of_bounds() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0, 3.0, 4.0]).narrow(0, 2, 3);
}

#[test]
#[should_panic(expected = "tapegrad: narrow: axis 1 is out of range for shape [4] (rank 1)")]
fn narrow_axis_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0, 3.0, 4.0]).narrow(1, 0, 1);
}

#[test]
#[should_panic(expected = "tapegrad: broadcast_to: shape [3] cannot be broadcast to [2, 4]")]
fn broadcast_to_incompatible() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0, 3.0]).broadcast_to(&[2, 4]);
}

#[test]
#[should_panic(expected = "tapegrad: Tensor::from_vec: 5 values cannot fill shape [2, 3], which holds 6")]
fn from_vec_length_mismatch() {
    let _ = Tensor::<f32>::from_vec(vec![0.0; 5], &[2, 3]);
}

#[test]
#[should_panic(expected = "tapegrad: item() needs a tensor with one element, but shape [3] has 3")]
fn item_of_many_elements() {
    let tape = Tape::<f64>::new();
    let _ = tape.var([1.0, 2.0, 3.0]).item();
}

#[test]
#[should_panic(expected = "tapegrad: backward: the output has shape [2, 2], not one element")]
fn backward_of_a_non_scalar() {
    let tape = Tape::<f64>::new();
    let _ = tape.var(m(2, 2)).exp().backward();
}

#[test]
#[should_panic(expected = "tapegrad: grad: the output has shape [3], not one element")]
fn recorded_grad_of_a_non_scalar() {
    let tape = Tape::<f64>::new();
    let x = tape.var([1.0, 2.0, 3.0]);
    let _ = x.exp().grad(&[x]);
}

#[test]
#[should_panic(expected = "tapegrad: backward_with_seed: seed shape [2] differs from the output shape [3]")]
fn backward_with_seed_of_the_wrong_shape() {
    let tape = Tape::<f64>::new();
    let _ = tape
        .var([1.0, 2.0, 3.0])
        .exp()
        .backward_with_seed(Tensor::ones(&[2]));
}

#[test]
#[should_panic(expected = "tapegrad: cross_entropy: target 5 at row 1 is not a class index below 3")]
fn cross_entropy_target_out_of_range() {
    let tape = Tape::<f64>::new();
    let _ = loss::cross_entropy(tape.var(m(2, 3)), &[0, 5]);
}

#[test]
#[should_panic(expected = "tapegrad: cross_entropy: 1 targets for 2 rows of logits [2, 3]")]
fn cross_entropy_wrong_target_count() {
    let tape = Tape::<f64>::new();
    let _ = loss::cross_entropy(tape.var(m(2, 3)), &[0]);
}

#[test]
#[should_panic(expected = "tapegrad: cross_entropy: logits must be [N, C], got shape [3]")]
fn cross_entropy_of_rank_1_logits() {
    let tape = Tape::<f64>::new();
    let _ = loss::cross_entropy(tape.var([1.0, 2.0, 3.0]), &[0]);
}

#[test]
#[should_panic(expected = "tapegrad: mse: prediction shape [3, 1] differs from target shape [3]")]
fn mse_shape_mismatch() {
    let tape = Tape::<f64>::new();
    let _ = loss::mse(tape.var(m(3, 1)), tape.constant([1.0, 2.0, 3.0]));
}

#[test]
#[should_panic(expected = "tapegrad: mul: cannot combine vars from two different tapes")]
fn mixing_vars_of_two_tapes() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let _ = t1.var(1.0) * t2.var(2.0);
}

#[test]
#[should_panic(expected = "tapegrad: matmul: cannot combine vars from two different tapes")]
fn matmul_of_vars_of_two_tapes() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let _ = t1.var(m(2, 2)).matmul(&t2.var(m(2, 2)));
}

#[test]
#[should_panic(expected = "tapegrad: grad: cannot combine vars from two different tapes")]
fn recorded_grad_wrt_a_var_of_another_tape() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let x = t1.var(1.0);
    let _ = (x * x).grad(&[t2.var(1.0)]);
}

#[test]
#[should_panic(expected = "tapegrad: Gradients::wrt: var 0 belongs to another tape than these gradients")]
fn gradients_of_a_var_of_another_tape() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let x = t1.var(1.0);
    let other = t2.var(1.0);
    let _ = (x * x).backward().wrt(other);
}

#[test]
#[should_panic(expected = "tapegrad: no gradient for var 1: it is a constant")]
fn gradients_index_of_a_constant() {
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0);
    let c = tape.constant(2.0);
    let g = (x * c).backward();
    let _ = &g[c];
}

#[test]
#[should_panic(expected = "tapegrad: no gradient for var 1")]
fn gradients_index_of_an_unused_var() {
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0);
    let unused = tape.var(2.0);
    let g = (x * 2.0).backward();
    let _ = &g[unused];
}

#[test]
#[should_panic(expected = "tapegrad: Param::set_value: new shape [3] differs from the parameter's shape [2]")]
fn param_set_value_changing_the_shape() {
    let p = Param::new(Tensor::<f64>::zeros(&[2]));
    p.set_value(Tensor::zeros(&[3]));
}

#[test]
#[should_panic(expected = "tapegrad: Param::update changed the shape from [2] to [1, 2]")]
fn param_update_changing_the_shape() {
    let p = Param::new(Tensor::<f64>::zeros(&[2]));
    p.update(|v| *v = v.reshape(&[1, 2]));
}

#[test]
fn try_from_vec_returns_an_error() {
    let err = Tensor::<f64>::try_from_vec(vec![1.0; 5], &[2, 3]).unwrap_err();
    assert!(matches!(
        err,
        tapegrad::Error::ShapeMismatch {
            op: "Tensor::from_vec",
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "tapegrad: Tensor::from_vec: 5 values cannot fill shape [2, 3], which holds 6"
    );
}

thread_local! {
    /// The location of the last panic on this thread (set by the hook installed below).
    static LAST_PANIC: RefCell<Option<(String, u32, String)>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic; returns the panic's (file, line, message).
fn panic_site(f: impl FnOnce()) -> (String, u32, String) {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(f));
    assert!(result.is_err(), "expected a panic");
    LAST_PANIC
        .with(|p| p.borrow_mut().take())
        .expect("the panic hook did not run")
}

/// A named call that must panic.
type PanicCase<'a> = Box<dyn FnOnce() + 'a>;

#[test]
fn panics_report_the_callers_location() {
    // The hook is process-wide; it records into a thread-local, so panics of tests running on
    // other threads at the same time only touch their own slot (and are not printed meanwhile).
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

    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let v = t1.var([1.0, 2.0, 3.0]);
    let mat = t1.var(m(2, 3));
    let p = Param::new(Tensor::<f64>::zeros(&[2]));
    let cases: Vec<(&str, PanicCase<'_>)> = vec![
        ("add", Box::new(|| _ = mat + v.narrow(0, 0, 2))),
        ("mul by var of another tape", Box::new(|| _ = v * t2.var(1.0))),
        ("matmul", Box::new(|| _ = mat.matmul(&mat))),
        ("reshape", Box::new(|| _ = mat.reshape(&[4]))),
        ("transpose", Box::new(|| _ = mat.transpose(0, 2))),
        ("sum_axis", Box::new(|| _ = mat.sum_axis(2, false))),
        ("mean_axis", Box::new(|| _ = mat.mean_axis(2, false))),
        ("max_axis", Box::new(|| _ = mat.max_axis(2, false))),
        ("softmax", Box::new(|| _ = mat.softmax(2))),
        ("log_softmax", Box::new(|| _ = mat.log_softmax(2))),
        ("narrow", Box::new(|| _ = v.narrow(0, 2, 2))),
        ("broadcast_to", Box::new(|| _ = v.broadcast_to(&[3, 2]))),
        ("sum_to", Box::new(|| _ = v.sum_to(&[2]))),
        (
            "Tensor::from_vec",
            Box::new(|| _ = Tensor::<f64>::from_vec(vec![1.0], &[2])),
        ),
        ("item", Box::new(|| _ = v.item())),
        ("backward", Box::new(|| _ = v.backward())),
        (
            "backward_with_seed",
            Box::new(|| _ = v.backward_with_seed(Tensor::ones(&[2]))),
        ),
        ("grad", Box::new(|| _ = v.grad(&[v]))),
        (
            "cross_entropy",
            Box::new(|| _ = loss::cross_entropy(mat, &[0, 3])),
        ),
        ("mse", Box::new(|| _ = loss::mse(mat, v))),
        (
            "Gradients::index",
            Box::new(|| _ = v.sum().backward()[mat].clone()),
        ),
        (
            "Gradients::wrt",
            Box::new(|| _ = v.sum().backward().wrt(t2.var(1.0))),
        ),
        ("Param::set_value", Box::new(|| p.set_value(Tensor::zeros(&[3])))),
        (
            "Tensor::add",
            Box::new(|| _ = Tensor::<f64>::zeros(&[2]).add(&Tensor::zeros(&[3]))),
        ),
        ("Tensor::matmul", Box::new(|| _ = m(2, 3).matmul(&m(2, 3)))),
        ("Tensor::reshape", Box::new(|| _ = m(2, 3).reshape(&[5]))),
    ];
    let mut wrong = Vec::new();
    for (name, f) in cases {
        let (file, line, message) = panic_site(f);
        if !file.ends_with("tests/errors.rs") {
            wrong.push(format!(
                "{name}: reported at {file}:{line}, not in tests/errors.rs ({message})"
            ));
        }
    }
    std::panic::set_hook(previous);
    assert!(
        wrong.is_empty(),
        "panics reported inside the library instead of at the caller:\n{}",
        wrong.join("\n")
    );
}

#[test]
#[should_panic(expected = "grad_with_seed: seed shape [3] differs from the output shape [2]")]
fn grad_with_seed_of_the_wrong_shape() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], &[2]));
    let seed = tape.constant(Tensor::ones(&[3]));
    let _ = (x * x).grad_with_seed(seed, &[x]);
}

#[test]
#[should_panic(expected = "pick: index 3 at row 1 is not below 3")]
fn pick_index_out_of_range() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros(&[2, 3]));
    let _ = x.pick(&[0, 3]);
}
