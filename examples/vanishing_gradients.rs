//! Vanishing gradients: the gradient reaching each layer of a deep, narrow network, for sigmoid,
//! tanh and ReLU.
//!
//! Backward multiplies the gradient by each layer's local derivative. The sigmoid's derivative
//! is at most 1/4, so with weights that keep activations at a steady scale the gradient shrinks
//! roughly fourfold per layer: the first layers of a deep sigmoid network barely learn. tanh
//! (derivative up to 1) and ReLU (1 where active, with He initialisation) keep it alive.
//!
//! Prints ‖dL/dW‖ per layer, a terminal plot, and writes `vanishing_gradients.svg` (in the current
//! directory, or DIR with `--out DIR`). Run with `cargo run --example vanishing_gradients`
//! (`--quick`: a shallower network).

mod common;

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::viz::LinePlot;

const WIDTH: usize = 32;
const BATCH: usize = 64;

#[derive(Clone, Copy)]
enum Act {
    Sigmoid,
    Tanh,
    Relu,
}

/// The norm of the loss's gradient with respect to each layer's weights, first layer first.
fn gradient_norms(act: Act, depth: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    // Xavier (std 1/√width) for sigmoid and tanh, He (std √(2/width)) for ReLU.
    let std = match act {
        Act::Relu => (2.0 / WIDTH as f32).sqrt(),
        _ => (1.0 / WIDTH as f32).sqrt(),
    };
    let tape = Tape::<f32>::new();
    let weights: Vec<_> = (0..depth)
        .map(|_| tape.var(Tensor::<f32>::randn(&[WIDTH, WIDTH], &mut rng) * std))
        .collect();
    let mut h = tape.constant(Tensor::<f32>::randn(&[BATCH, WIDTH], &mut rng));
    for w in &weights {
        let z = h.matmul(w);
        h = match act {
            Act::Sigmoid => z.sigmoid(),
            Act::Tanh => z.tanh(),
            Act::Relu => z.relu(),
        };
    }
    let grads = h.powi(2).mean().backward();
    weights
        .iter()
        .map(|w| {
            grads[*w]
                .as_slice()
                .iter()
                .map(|g| f64::from(*g).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let depth = if quick { 8 } else { 16 };
    println!("{depth} layers of width {WIDTH}, batch {BATCH}, loss = mean(output²)\n");
    let runs = [
        ("sigmoid", Act::Sigmoid),
        ("tanh", Act::Tanh),
        ("relu", Act::Relu),
    ];
    let norms: Vec<Vec<f64>> = runs
        .iter()
        .map(|&(_, act)| gradient_norms(act, depth, 3))
        .collect();

    println!("{:>5} {:>12} {:>12} {:>12}", "layer", "sigmoid", "tanh", "relu");
    let [sigmoid, tanh, relu] = [&norms[0], &norms[1], &norms[2]];
    for (layer, ((s, t), r)) in sigmoid.iter().zip(tanh).zip(relu).enumerate() {
        println!("{layer:>5} {s:>12.3e} {t:>12.3e} {r:>12.3e}");
    }
    let ratio = |n: &[f64]| n[0] / n[depth - 1];
    println!(
        "\nfirst layer / last layer: sigmoid {:.1e}, tanh {:.1e}, relu {:.1e}\n",
        ratio(&norms[0]),
        ratio(&norms[1]),
        ratio(&norms[2])
    );
    let mut plot = LinePlot::new("‖dL/dW‖ by layer (0 = first)").log_y(true);
    for ((name, _), n) in runs.iter().zip(&norms) {
        plot = plot.series(*name, n);
    }
    print!("{}", plot.to_text(48, 12));

    let dir = common::out_dir();
    std::fs::create_dir_all(&dir).map_err(|source| tapegrad::Error::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join("vanishing_gradients.svg");
    plot.write_svg(&path, 640, 400)?;
    println!("\nplot written to {}", path.display());

    // Sigmoid loses at least a factor of two per layer; ReLU with He initialisation does not.
    if ratio(&norms[0]) > 0.5f64.powi(depth as i32 - 1) || ratio(&norms[2]) < 1e-2 {
        eprintln!("vanishing_gradients: unexpected gradient norms");
        std::process::exit(1);
    }
    Ok(())
}
