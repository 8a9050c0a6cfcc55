//! Linear regression y = w·x + b on noisy data from y = 2x + 3, fitted three ways with the same
//! learning rate: batch gradient descent (every point, one step per epoch), stochastic gradient
//! descent (one point per step) and mini-batch gradient descent (16 points per step).
//!
//! Prints the final w, b, loss and number of steps of each, a terminal plot of the loss after
//! each epoch, and writes the same curves to `linear_regression.svg` (in the current directory,
//! or in DIR with `--out DIR`). Run with `cargo run --example linear_regression` (`--quick`: fewer
//! epochs).

mod common;

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use tapegrad::viz::LinePlot;

const POINTS: usize = 100;
const LR: f32 = 0.1;

struct Fit {
    w: f32,
    b: f32,
    steps: usize,
    /// The loss on the whole data set at the start and after each epoch.
    losses: Vec<f64>,
}

/// Mean squared error of `w·x + b` on the whole data set.
fn full_loss(xs: &[f32], ys: &[f32], w: &Param<f32>, b: &Param<f32>) -> f64 {
    let (w, b) = (w.value().item(), b.value().item());
    let sum: f32 = xs.iter().zip(ys).map(|(x, y)| (w * x + b - y).powi(2)).sum();
    f64::from(sum) / xs.len() as f64
}

/// Gradient descent from w = b = 0 with batches of `batch_size` points, reshuffled each epoch.
fn fit(xs: &[f32], ys: &[f32], batch_size: usize, epochs: usize, rng: &mut StdRng) -> Fit {
    let w = Param::new(Tensor::<f32>::zeros(&[1, 1]));
    let b = Param::new(Tensor::<f32>::zeros(&[1]));
    let mut opt = Sgd::new(
        vec![w.clone(), b.clone()],
        SgdConfig {
            lr: f64::from(LR),
            ..Default::default()
        },
    );
    let mut order: Vec<usize> = (0..xs.len()).collect();
    let mut losses = vec![full_loss(xs, ys, &w, &b)];
    let mut steps = 0;
    let mut tape = Tape::new();
    for _ in 0..epochs {
        order.shuffle(rng);
        for batch in order.chunks(batch_size) {
            let bx: Vec<f32> = batch.iter().map(|&i| xs[i]).collect();
            let by: Vec<f32> = batch.iter().map(|&i| ys[i]).collect();
            tape.reset();
            let x = tape.constant(Tensor::from_vec(bx, &[batch.len(), 1]));
            let y = tape.constant(Tensor::from_vec(by, &[batch.len(), 1]));
            let pred = x.matmul(&tape.param(&w)) + tape.param(&b);
            let grads = loss::mse(pred, y).backward();
            tape.reset();
            opt.step(&grads);
            steps += 1;
        }
        losses.push(full_loss(xs, ys, &w, &b));
    }
    Fit {
        w: w.value().item(),
        b: b.value().item(),
        steps,
        losses,
    }
}

fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let epochs = if quick { 20 } else { 50 };
    let mut rng = StdRng::seed_from_u64(0);
    let xs = Tensor::<f32>::rand_uniform(&[POINTS], -1.0, 1.0, &mut rng).to_vec();
    let noise = Tensor::<f32>::randn(&[POINTS], &mut rng).to_vec();
    let ys: Vec<f32> = xs
        .iter()
        .zip(&noise)
        .map(|(x, n)| 2.0 * x + 3.0 + 0.1 * n)
        .collect();

    println!("{POINTS} points from y = 2x + 3 + noise (σ = 0.1); lr = {LR}, {epochs} epochs each\n");
    println!(
        "{:<26} {:>8} {:>8} {:>10} {:>7}",
        "method", "w", "b", "loss", "steps"
    );
    let mut plot = LinePlot::new("loss on all points after each epoch").log_y(true);
    let mut fits = Vec::new();
    for (name, batch_size) in [
        ("batch (100 per step)", POINTS),
        ("stochastic (1 per step)", 1),
        ("mini-batch (16 per step)", 16),
    ] {
        let f = fit(&xs, &ys, batch_size, epochs, &mut rng);
        let last = *f.losses.last().expect("at least the initial loss");
        println!(
            "{name:<26} {:>8.4} {:>8.4} {:>10.6} {:>7}",
            f.w, f.b, last, f.steps
        );
        plot = plot.series(name, &f.losses);
        fits.push(f);
    }
    println!("\nThe noise alone gives a loss of about σ² = 0.01. One step per epoch (batch) is smooth but");
    println!("slow per epoch; one point per step takes 100 noisy steps per epoch.\n");
    print!("{}", plot.to_text(60, 14));

    let dir = common::out_dir();
    std::fs::create_dir_all(&dir).map_err(|source| tapegrad::Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("linear_regression.svg");
    plot.write_svg(&path, 640, 400)?;
    println!("\nloss curves written to {}", path.display());

    let sgd = &fits[1];
    if (sgd.w - 2.0).abs() > 0.1 || (sgd.b - 3.0).abs() > 0.1 {
        eprintln!("linear_regression: stochastic descent did not find w ≈ 2, b ≈ 3");
        std::process::exit(1);
    }
    Ok(())
}
