//! Anomaly detection (`Tape::set_anomaly_detection`, DESIGN.md section 2d): the first op that
//! makes a NaN or infinity from finite inputs, and the first backward rule that makes one from a
//! finite gradient, panic with the op, the shapes, the bad value and the user's file and line.

use tapegrad::{Tape, Tensor, Var};

fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("should panic");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}

/// Drops a value (vars are `Copy`, so `drop` would be linted).
fn ignore<T>(_: T) {}

/// `file:line:` of this file, as the messages print the user's place.
fn here(line: u32) -> String {
    format!("{}:{line}:", file!())
}

#[test]
fn off_by_default() {
    let tape = Tape::<f64>::new();
    assert!(!tape.anomaly_detection());
    let x = tape.var(Tensor::from_vec(vec![-1.0, 0.0], &[2]));
    let y = x.ln().sum() + x.sqrt().sum();
    assert!(y.item().is_nan());
    let grads = y.backward();
    assert!(!grads[x].all_finite());
}

#[test]
fn ln_of_a_negative_number_panics_at_the_users_line() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    assert!(tape.anomaly_detection());
    let x = tape.var(Tensor::from_vec(vec![2.0, -3.0, 1.0], &[3]));
    let y = x * 2.0;
    let line = line!() + 1;
    let msg = panic_message(|| ignore(y.ln()));
    assert!(msg.contains("`ln`"), "{msg}");
    assert!(msg.contains(&here(line)), "{msg}");
    assert!(msg.contains("NaN at element [1]"), "{msg}");
    assert!(msg.contains("shape [3]"), "{msg}");
    assert!(msg.contains("input 0 of shape [3] (value -6.0 there)"), "{msg}");
}

#[test]
fn a_rank0_op_panics_too() {
    let tape = Tape::<f32>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(-0.5f32);
    let line = line!() + 1;
    let msg = panic_message(|| ignore(x.ln()));
    assert!(
        msg.contains("`ln`") && msg.contains(&here(line)) && msg.contains("NaN"),
        "{msg}"
    );
    assert!(msg.contains("input 0 of shape [] (value -0.5)"), "{msg}");
    // Division by zero with an operator: inf from finite inputs.
    let zero = tape.var(0.0f32);
    let line = line!() + 1;
    let msg = panic_message(|| ignore(tape.var(1.0f32) / zero));
    assert!(
        msg.contains("`div`") && msg.contains(&here(line)) && msg.contains("inf"),
        "{msg}"
    );
}

#[test]
fn no_false_positive_when_an_input_was_already_nan() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(Tensor::from_vec(vec![f64::NAN, 1.0], &[2]));
    // ln of NaN, x·x of NaN: NaN from a NaN input, not born here.
    let y = x.ln() + x * x;
    assert!(y.value().to_vec()[0].is_nan());
    // Backward: mul's rule gives g·x = NaN, but from a NaN value, so no panic either.
    let grads = y.sum().backward();
    assert!(grads[x].to_vec()[0].is_nan());
    assert!(y.sum().grad(&[x])[0].value().to_vec()[0].is_nan());
}

#[test]
fn sqrt_at_zero_panics_in_backward_at_the_users_line() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(Tensor::from_vec(vec![0.0, 4.0], &[2]));
    let line = line!() + 1;
    let y = x.sqrt();
    // The forward pass is finite (0 and 2); the rule's 1/(2·√0) is not.
    let loss = (y * 3.0).sum();
    let msg = panic_message(|| {
        let _ = loss.backward();
    });
    assert!(msg.contains("backward rule of `sqrt`"), "{msg}");
    assert!(msg.contains(&format!("recorded at {}", here(line))), "{msg}");
    assert!(
        msg.contains("inf at element [0] of the gradient for input 0 (shape [2])"),
        "{msg}"
    );
    assert!(msg.contains("finite gradient (shape [2])"), "{msg}");
    assert!(msg.contains("input 0 of shape [2] (value 0.0 there)"), "{msg}");
}

#[test]
fn sqrt_at_zero_panics_in_the_recorded_backward_too() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(Tensor::from_vec(vec![4.0, 0.0], &[2]));
    let line = line!() + 1;
    let y = x.sqrt();
    let loss = y.sum();
    // The rule divides by the output, 0: its own `div` node is not reported as a forward
    // anomaly; the rule's result is, naming sqrt and the user's line.
    let msg = panic_message(|| {
        let _ = loss.grad(&[x]);
    });
    assert!(msg.contains("backward rule of `sqrt`"), "{msg}");
    assert!(msg.contains(&format!("recorded at {}", here(line))), "{msg}");
    assert!(msg.contains("inf at element [1]"), "{msg}");
}

#[test]
fn a_rank0_backward_rule_panics_on_the_inline_path() {
    // 1/x at x = 1e-200 is finite (1e200), but div's rule for x, -g·out/x, is -1e400: both
    // ops are micrograd-style rank-0 nodes, whose rules run inline.
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(1e-200);
    let line = line!() + 1;
    let y = 1.0 / x;
    let loss = y + x;
    assert!(loss.item().is_finite());
    let msg = panic_message(|| {
        let _ = loss.backward();
    });
    assert!(msg.contains("backward rule of `div`"), "{msg}");
    assert!(msg.contains(&format!("recorded at {}", here(line))), "{msg}");
    assert!(
        msg.contains("into -inf") && msg.contains("gradient for input 1"),
        "{msg}"
    );
    // sqrt at 0 on rank 0 (a rule without an inline form).
    let z = tape.var(0.0);
    let line = line!() + 1;
    let r = z.sqrt();
    let msg = panic_message(|| {
        let _ = r.backward();
    });
    assert!(msg.contains("`sqrt`") && msg.contains(&here(line)), "{msg}");
}

#[test]
fn off_again_nothing_is_checked() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    tape.set_anomaly_detection(false);
    let x = tape.var(Tensor::from_vec(vec![-1.0, 0.0], &[2]));
    let y = (x.ln() + x.sqrt()).sum();
    assert!(y.item().is_nan());
    let z = x.sqrt().sum();
    assert!(!z.backward()[x].all_finite());
    assert!(!z.grad(&[x])[0].value().all_finite());
}

#[test]
fn a_node_recorded_while_off_is_still_checked_in_backward_without_a_line() {
    let tape = Tape::<f64>::new();
    let x = tape.var(0.0);
    let y = x.sqrt();
    tape.set_anomaly_detection(true);
    let msg = panic_message(|| {
        let _ = y.backward();
    });
    assert!(
        msg.contains("`sqrt`") && msg.contains("anomaly detection was off"),
        "{msg}"
    );
}

#[test]
fn the_setting_survives_reset_and_ops_under_no_grad_are_checked() {
    let mut tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    tape.reset();
    assert!(tape.anomaly_detection());
    let x = tape.var(-1.0);
    let line = line!() + 1;
    let msg = panic_message(|| ignore(tape.no_grad(|| x.ln())));
    assert!(msg.contains("`ln`") && msg.contains(&here(line)), "{msg}");
}

#[test]
fn a_second_order_anomaly_names_the_users_op() {
    // √x at x = 1e-300: the recorded gradient 1/(2√x) = 5e149 is finite, but differentiating
    // it again goes back through sqrt, whose rule now divides 5e149-sized gradients by 1e-150.
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(1e-300);
    let line = line!() + 1;
    let y: Var<f64> = x.sqrt();
    let g = y.grad(&[x])[0];
    assert!(g.item().is_finite());
    let msg = panic_message(|| ignore(g.grad(&[x])));
    assert!(msg.contains("backward rule of `sqrt`"), "{msg}");
    assert!(msg.contains(&format!("recorded at {}", here(line))), "{msg}");
}

/// A custom op whose rule turns a finite gradient into an infinite one at 0 (the slope of
/// `sqrt`, written by hand), and whose forward gives NaN below 0.
struct HandSqrt;

impl tapegrad::autograd::FirstOrderOp<f64> for HandSqrt {
    fn name(&self) -> &'static str {
        "hand_sqrt"
    }
    fn forward(&self, xs: &[&Tensor<f64>], _ctx: &mut tapegrad::autograd::ForwardCtx<f64>) -> Tensor<f64> {
        xs[0].map(f64::sqrt)
    }
    fn backward(&self, ctx: &tapegrad::autograd::TensorCtx<'_, f64>) -> Vec<Option<Tensor<f64>>> {
        let slope = ctx.input(0).map(|x| 0.5 / x.sqrt());
        vec![ctx.need(0, || ctx.grad_output() * &slope)]
    }
}

#[test]
fn a_custom_ops_rule_and_forward_are_named_by_the_custom_op() {
    let tape = Tape::<f64>::new();
    tape.set_anomaly_detection(true);
    let x = tape.var(Tensor::from_vec(vec![0.0, 4.0], &[2]));
    let y = tape.custom_first_order(HandSqrt, &[x]).sum();
    let msg = panic_message(|| ignore(y.backward()));
    assert!(msg.contains("backward rule of `hand_sqrt`"), "{msg}");
    assert!(!msg.contains("`custom`"), "{msg}");

    // Under no_grad the forward is checked as a built-in op's is.
    let z = tape.constant(Tensor::from_vec(vec![-1.0], &[1]));
    let msg = panic_message(|| ignore(tape.no_grad(|| tape.custom_first_order(HandSqrt, &[z]))));
    assert!(msg.contains("`hand_sqrt`") && msg.contains("NaN"), "{msg}");
}
