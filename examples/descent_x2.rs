//! Gradient descent on f(x) = x² from x = 5: a good learning rate, one too large (divergence)
//! and one too small (slow progress).
//!
//! Each step is x ← x − lr·f'(x) = x − lr·2x = (1 − 2·lr)·x, so x shrinks by the factor
//! |1 − 2·lr| per step: 0.8 for lr = 0.1, but 1.2 (growing, with alternating sign) for lr = 1.1.
//!
//! Run with `cargo run --example descent_x2` (`--quick` prints fewer steps).

use tapegrad::Tape;

/// Runs `steps` steps of gradient descent on x² from `x0`, printing each when `verbose`;
/// returns the final x.
fn descend(x0: f64, lr: f64, steps: usize, verbose: bool) -> f64 {
    let mut tape = Tape::<f64>::new();
    let mut x = x0;
    let factor = ((1.0 - 2.0 * lr) * 1e9).round() / 1e9; // printed without rounding noise
    println!("lr = {lr}: each step multiplies x by 1 - 2·lr = {factor}");
    for step in 0..=steps {
        tape.reset();
        let xv = tape.var(x);
        let f = xv * xv;
        if verbose || step == steps {
            println!("  step {step:4}   x = {:>12.6}   f(x) = {:>14.6}", x, f.item());
        }
        if step < steps {
            let grads = f.backward();
            x -= lr * grads[xv].item();
        }
    }
    println!();
    x
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let steps = if quick { 10 } else { 30 };

    let good = descend(5.0, 0.1, steps, true);
    let diverged = descend(5.0, 1.1, steps, true);
    let slow = descend(5.0, 0.001, steps, false);

    println!("after {steps} steps from x = 5:");
    println!("  lr = 0.1    x = {good:.3e}   converging: 0.8^{steps} · 5");
    println!("  lr = 1.1    x = {diverged:.3e}   diverging: overshoots further each step");
    println!("  lr = 0.001  x = {slow:.4}     crawling: 0.998^{steps} · 5");
    let expected_good = 5.0 * 0.8f64.powi(steps as i32);
    if (good - expected_good).abs() > 1e-9 || diverged.abs() <= 5.0 || !(4.0..5.0).contains(&slow) {
        eprintln!("descent_x2: unexpected results");
        std::process::exit(1);
    }
}
