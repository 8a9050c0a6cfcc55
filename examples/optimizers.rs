//! Seven optimizers on Rosenbrock's function f(x, y) = (1 − x)² + 100 (y − x²)² from the same
//! start (−1.2, 1): how many steps each needs to bring f within 1e-6 of its minimum 0 at (1, 1).
//!
//! The first-order methods use the learning rates of the table in `tapegrad::optim`'s docs
//! (larger ones diverge or hover in the curved valley); L-BFGS with a strong-Wolfe line search
//! needs no rate. Prints a table and the loss curves, and writes them to `optimizers.svg` and
//! the paths through the plane to `optimizers_paths.svg` (in the current directory, or DIR with
//! `--out DIR`). Run with `cargo run --release --example
//! optimizers` (`--quick`: at most 2,000 steps each).

mod common;

use tapegrad::optim::LineSearch;
use tapegrad::prelude::*;
use tapegrad::viz::{LinePlot, PathPlot};

const TOLERANCE: f64 = 1e-6;

fn rosenbrock<'t>(x: Var<'t, f64>, y: Var<'t, f64>) -> Var<'t, f64> {
    (1.0 - x).powi(2) + 100.0 * (y - x.powi(2)).powi(2)
}

fn start() -> [Param<f64>; 2] {
    [Param::new(Tensor::scalar(-1.2)), Param::new(Tensor::scalar(1.0))]
}

/// Runs `opt` on `params` until f < TOLERANCE or `max_steps`; returns the loss before each step,
/// the points visited and the steps taken (`None` if it did not get there).
fn run(
    opt: &mut dyn Optimizer<f64>,
    params: &[Param<f64>; 2],
    max_steps: usize,
) -> (Vec<f64>, Vec<(f64, f64)>, Option<usize>) {
    let mut tape = Tape::new();
    let mut losses = Vec::new();
    let mut path = Vec::new();
    for step in 0..=max_steps {
        path.push((params[0].value().item(), params[1].value().item()));
        tape.reset();
        let f = rosenbrock(tape.param(&params[0]), tape.param(&params[1]));
        losses.push(f.item());
        if f.item() < TOLERANCE {
            return (losses, path, Some(step));
        }
        if step == max_steps || !f.item().is_finite() {
            break;
        }
        let grads = f.backward();
        tape.reset();
        opt.step(&grads);
    }
    (losses, path, None)
}

type Maker = fn(Vec<Param<f64>>) -> Box<dyn Optimizer<f64>>;

fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let max_steps = if quick { 2_000 } else { 20_000 };
    let first_order: [(&str, Maker); 6] = [
        ("SGD, lr 2e-3", |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 2e-3,
                    ..Default::default()
                },
            ))
        }),
        ("momentum 0.9, lr 2e-3", |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 2e-3,
                    momentum: 0.9,
                    ..Default::default()
                },
            ))
        }),
        ("Nesterov 0.9, lr 1e-3", |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 1e-3,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            ))
        }),
        ("AdaGrad, lr 0.5", |p| {
            Box::new(Adagrad::new(
                p,
                AdagradConfig {
                    lr: 0.5,
                    ..Default::default()
                },
            ))
        }),
        ("RMSprop + momentum, lr 1e-3", |p| {
            Box::new(RmsProp::new(
                p,
                RmsPropConfig {
                    lr: 1e-3,
                    momentum: 0.9,
                    ..Default::default()
                },
            ))
        }),
        ("Adam, lr 0.1", |p| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    lr: 0.1,
                    ..Default::default()
                },
            ))
        }),
    ];

    println!("Rosenbrock from (-1.2, 1); steps until f < {TOLERANCE:e} (at most {max_steps})\n");
    println!("{:<30} {:>8} {:>10} {:>10}", "optimizer", "steps", "x", "y");
    let mut plot = LinePlot::new("Rosenbrock: f before each step").log_y(true);
    let mut paths =
        PathPlot::new("Rosenbrock: the points each optimizer visits").mark("minimum (1, 1)", (1.0, 1.0));
    let mut reached = 0;
    for (name, make) in first_order {
        let params = start();
        let mut opt = make(params.to_vec());
        let (losses, path, steps) = run(opt.as_mut(), &params, max_steps);
        let steps_text = steps.map_or_else(|| format!(">{max_steps}"), |s| s.to_string());
        println!(
            "{name:<30} {steps_text:>8} {:>10.6} {:>10.6}",
            params[0].value().item(),
            params[1].value().item()
        );
        reached += usize::from(steps.is_some());
        plot = plot.series(name, &losses);
        paths = paths.path(name, &path);
    }

    // L-BFGS re-evaluates the function inside each step (up to 20 iterations per call).
    let params = start();
    let mut lbfgs = Lbfgs::new(
        params.to_vec(),
        LbfgsConfig {
            lr: 1.0,
            line_search_fn: Some(LineSearch::StrongWolfe),
            ..Default::default()
        },
    );
    let mut calls = 0;
    while calls < 100 {
        lbfgs.step_with(|tape| rosenbrock(tape.param(&params[0]), tape.param(&params[1])));
        calls += 1;
        let tape = Tape::new();
        let f = rosenbrock(tape.param(&params[0]), tape.param(&params[1])).item();
        if f < TOLERANCE {
            break;
        }
    }
    println!(
        "{:<30} {:>8} {:>10.6} {:>10.6}   ({} calls of step_with, {} function evaluations)",
        "L-BFGS, strong Wolfe",
        lbfgs.n_iter(),
        params[0].value().item(),
        params[1].value().item(),
        calls,
        lbfgs.func_evals()
    );
    println!("\n(L-BFGS counts iterations; each may evaluate f more than once.)\n");
    print!("{}", plot.to_text(64, 14));

    let dir = common::out_dir();
    std::fs::create_dir_all(&dir).map_err(|source| tapegrad::Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("optimizers.svg");
    plot.write_svg(&path, 720, 440)?;
    println!("\nloss curves written to {}", path.display());
    let path = dir.join("optimizers_paths.svg");
    paths.write_svg(&path, 720, 560)?;
    println!("paths written to {}", path.display());

    let tape = Tape::new();
    let lbfgs_f = rosenbrock(tape.param(&params[0]), tape.param(&params[1])).item();
    if lbfgs_f >= TOLERANCE || (!quick && reached < 6) {
        eprintln!("optimizers: an optimizer did not reach the tolerance");
        std::process::exit(1);
    }
    Ok(())
}
