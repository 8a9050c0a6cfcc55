//! Learning-rate schedules: the same noisy mini-batch SGD run with a constant rate, step decay,
//! exponential decay, cosine annealing, and a linear warm-up followed by cosine annealing.
//!
//! With noisy gradients a constant rate keeps the parameters jittering around the minimum;
//! lowering it over time lets them settle. Prints the rate and the loss per epoch, plots both,
//! and writes `schedules_lr.svg` and `schedules_loss.svg` (in the current directory, or DIR with
//! `--out DIR`). Run with `cargo run --example schedules` (`--quick`: fewer epochs).

mod common;

use tapegrad::optim::{CosineAnnealingLr, ExponentialLr, LinearWarmup, LrScheduler, Schedule, StepLr};
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use tapegrad::viz::LinePlot;

const POINTS: usize = 200;
const BATCH: usize = 8;
const BASE_LR: f64 = 0.3;

struct Run {
    lrs: Vec<f64>,
    losses: Vec<f64>,
}

/// Mini-batch SGD on y = w·x + b from zero, the rate set by `schedule` each epoch.
fn train<S: Schedule>(schedule: S, xs: &[f32], ys: &[f32], epochs: usize) -> Run {
    let mut rng = StdRng::seed_from_u64(1); // the same batches for every schedule
    let w = Param::new(Tensor::<f32>::zeros(&[1, 1]));
    let b = Param::new(Tensor::<f32>::zeros(&[1]));
    let mut opt = Sgd::new(
        vec![w.clone(), b.clone()],
        SgdConfig {
            lr: BASE_LR,
            ..Default::default()
        },
    );
    let mut scheduler = LrScheduler::new(schedule, &mut opt);
    let mut order: Vec<usize> = (0..xs.len()).collect();
    let mut run = Run {
        lrs: Vec::new(),
        losses: Vec::new(),
    };
    let mut tape = Tape::new();
    for _ in 0..epochs {
        run.lrs.push(opt.lr());
        order.shuffle(&mut rng);
        for batch in order.chunks(BATCH) {
            tape.reset();
            let bx: Vec<f32> = batch.iter().map(|&i| xs[i]).collect();
            let by: Vec<f32> = batch.iter().map(|&i| ys[i]).collect();
            let x = tape.constant(Tensor::from_vec(bx, &[batch.len(), 1]));
            let y = tape.constant(Tensor::from_vec(by, &[batch.len(), 1]));
            let pred = x.matmul(&tape.param(&w)) + tape.param(&b);
            let grads = loss::mse(pred, y).backward();
            tape.reset();
            opt.step(&grads);
        }
        scheduler.step(&mut opt);
        let (wv, bv) = (w.value().item(), b.value().item());
        let sse: f32 = xs.iter().zip(ys).map(|(x, y)| (wv * x + bv - y).powi(2)).sum();
        run.losses.push(f64::from(sse) / xs.len() as f64);
    }
    run
}

fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let epochs = if quick { 12 } else { 40 };
    let mut rng = StdRng::seed_from_u64(0);
    let xs = Tensor::<f32>::rand_uniform(&[POINTS], -1.0, 1.0, &mut rng).to_vec();
    let noise = Tensor::<f32>::randn(&[POINTS], &mut rng).to_vec();
    let ys: Vec<f32> = xs
        .iter()
        .zip(&noise)
        .map(|(x, n)| 2.0 * x + 3.0 + 0.5 * n)
        .collect();

    let runs = [
        (
            "constant",
            train(|base: f64, _epoch: usize| base, &xs, &ys, epochs),
        ),
        ("step ×0.3 every 4", train(StepLr::new(4, 0.3), &xs, &ys, epochs)),
        (
            "exponential ×0.8",
            train(ExponentialLr::new(0.8), &xs, &ys, epochs),
        ),
        (
            "cosine",
            train(CosineAnnealingLr::new(epochs, 0.0), &xs, &ys, epochs),
        ),
        (
            "warm-up 3, then cosine",
            train(
                LinearWarmup::new(0.1, 1.0, 3).then(3, CosineAnnealingLr::new(epochs - 3, 0.0)),
                &xs,
                &ys,
                epochs,
            ),
        ),
    ];

    println!("y = 2x + 3 + noise (σ = 0.5), {POINTS} points, batches of {BATCH}, base lr {BASE_LR}\n");
    println!(
        "{:<24} {:>10} {:>12} {:>12}",
        "schedule", "last lr", "last loss", "best loss"
    );
    let mut lr_plot = LinePlot::new("learning rate by epoch");
    let mut loss_plot = LinePlot::new("loss by epoch").log_y(true);
    for (name, run) in &runs {
        let best = run.losses.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<24} {:>10.2e} {:>12.6} {:>12.6}",
            run.lrs[epochs - 1],
            run.losses[epochs - 1],
            best
        );
        lr_plot = lr_plot.series(*name, &run.lrs);
        loss_plot = loss_plot.series(*name, &run.losses);
    }
    println!("\nThe noise alone gives a loss of about σ² = 0.25.\n");
    print!("{}\n{}", lr_plot.to_text(48, 10), loss_plot.to_text(48, 10));

    let dir = common::out_dir();
    std::fs::create_dir_all(&dir).map_err(|source| tapegrad::Error::Io {
        path: dir.clone(),
        source,
    })?;
    for (file, plot) in [("schedules_lr.svg", &lr_plot), ("schedules_loss.svg", &loss_plot)] {
        let path = dir.join(file);
        plot.write_svg(&path, 640, 400)?;
        println!("plot written to {}", path.display());
    }
    if runs.iter().any(|(_, r)| !r.losses.iter().all(|l| l.is_finite())) {
        eprintln!("schedules: a run diverged");
        std::process::exit(1);
    }
    Ok(())
}
