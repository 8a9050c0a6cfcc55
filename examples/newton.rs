//! Newton's method against gradient descent on an ill-conditioned quadratic.
//!
//! f(x, y) = ½ (x² + 100·y²) has curvature 1 along x and 100 along y (condition number 100).
//! Gradient descent must keep its learning rate below 2/100 or it diverges along y, and then
//! crawls along x; Newton's method rescales each direction by its curvature and lands on the
//! minimum in one step. `tapegrad::optim::newton_cg` gets the curvature from Hessian-vector
//! products: the gradient is recorded on the tape and differentiated again.
//!
//! Run with `cargo run --example newton` (`--quick` accepted; the example is already fast).

use tapegrad::optim::{NewtonCgConfig, newton_cg};
use tapegrad::prelude::*;

/// The objective, recorded on `tape` from the vars `v = [x, y]`.
fn objective<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
    0.5 * (v[0].powi(2) + 100.0 * v[1].powi(2))
}

const TOLERANCE: f64 = 1e-10;

/// Gradient descent from (1, 1) until f < TOLERANCE or `max_steps`; returns the steps taken.
fn gradient_descent(lr: f64, max_steps: usize, verbose: bool) -> (usize, f64) {
    let (x, y) = (Param::new(Tensor::scalar(1.0)), Param::new(Tensor::scalar(1.0)));
    let mut opt = Sgd::new(
        vec![x.clone(), y.clone()],
        SgdConfig {
            lr,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    for step in 0..max_steps {
        tape.reset();
        let f = objective(&[tape.param(&x), tape.param(&y)]);
        let value = f.item();
        if verbose && (step < 5 || step % 200 == 0) {
            println!(
                "  step {step:5}   x = {:>10.3e}   y = {:>10.3e}   f = {value:.3e}",
                x.value().item(),
                y.value().item()
            );
        }
        if value < TOLERANCE || !value.is_finite() {
            return (step, value);
        }
        let grads = f.backward();
        tape.reset();
        opt.step(&grads);
    }
    tape.reset();
    (max_steps, objective(&[tape.param(&x), tape.param(&y)]).item())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let max_steps = if quick { 2_000 } else { 5_000 };
    println!("f(x, y) = ½ (x² + 100 y²) from (1, 1); stop when f < {TOLERANCE:e}\n");

    println!("gradient descent, lr = 0.019 (just under the 2/100 limit):");
    let (gd_steps, gd_f) = gradient_descent(0.019, max_steps, true);
    println!("gradient descent, lr = 0.021 (just over it):");
    let (_, diverged_f) = gradient_descent(0.021, 50, false);
    println!("  after 50 steps f = {diverged_f:.3e}: the y direction blows up\n");

    let (x, y) = (Param::new(Tensor::scalar(1.0)), Param::new(Tensor::scalar(1.0)));
    let report = newton_cg(
        &[x.clone(), y.clone()],
        |_tape, v| objective(v),
        NewtonCgConfig::default(),
    );
    println!("Newton-CG:");
    println!(
        "  {} iteration(s), {} Hessian-vector products, f = {:.3e} at ({:.3e}, {:.3e})\n",
        report.iterations,
        report.hvp_evals,
        report.loss,
        x.value().item(),
        y.value().item()
    );

    println!("{:<28} {:>8}", "method", "steps");
    println!("{:<28} {:>8}", "gradient descent (0.019)", gd_steps);
    println!("{:<28} {:>8}", "Newton-CG", report.iterations);
    if !report.converged || report.iterations > 2 || gd_f >= TOLERANCE || diverged_f < 1.0 {
        eprintln!("newton: unexpected results");
        std::process::exit(1);
    }
}
