//! Three interleaved spiral arms (CS231n's data), classified by a 2-64-64-3 ReLU MLP with softmax
//! cross-entropy and Adam, in mini-batches.
//!
//! Run with `cargo run --release --example spiral` (add `--quick` for a short run of the same code).
//! `tests/nn.rs` runs [`train`] too and checks the accuracy.

mod common;

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::train::{Progress, evaluate};

/// Loss and training accuracy after a run, and the trained model.
#[derive(Debug)]
pub struct Report {
    /// The mean cross-entropy over the whole training set after the last epoch.
    pub loss: f64,
    /// The fraction of points classified correctly after the last epoch.
    pub accuracy: f64,
    /// The trained network.
    pub model: Mlp<f32>,
    /// The training data.
    pub data: tapegrad::data::Dataset<f32>,
}

/// 300 points (100 per class, angle noise 0.2); mini-batches of 32, shuffled with a seed;
/// Adam with lr 0.01 for `epochs` epochs. Each epoch ends with an evaluation pass
/// (`train::evaluate`: evaluation mode, nothing recorded).
pub fn train(epochs: usize, verbose: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(0);
    let data = tapegrad::data::spirals::<f32, _>(100, 3, 0.2, &mut rng);

    let mut model = Mlp::new(&[2, 64, 64, 3], Activation::Relu, &mut rng);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut progress = Progress::new(epochs).quiet(!verbose).every(20);
    let (mut loss, mut accuracy) = (f64::NAN, 0.0);
    for _ in 0..epochs {
        model.train(true);
        for batch in data.batches(32).shuffle(&mut rng) {
            tape.reset();
            let logits = model.forward(&tape, tape.constant(batch.features.clone()));
            let grads = loss::cross_entropy(logits, &batch.labels()).backward();
            tape.reset(); // free the tape's hold on the parameters so the update is in place
            opt.step(&grads);
        }
        let eval = evaluate(&mut model, &data, 300, |logits, batch| {
            loss::cross_entropy(logits, &batch.labels())
        });
        (loss, accuracy) = (eval.loss, eval.accuracy.unwrap_or(0.0));
        progress.epoch(&[("loss", loss), ("accuracy", accuracy)]);
    }
    Report {
        loss,
        accuracy,
        model,
        data,
    }
}

#[allow(dead_code)] // the test includes this file for `train` only
fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let report = train(if quick { 10 } else { 100 }, true);
    println!(
        "final: loss {:.4}, training accuracy {:.1}%",
        report.loss,
        100.0 * report.accuracy
    );
    let path = common::out_dir().join("spiral_boundary.svg");
    common::write_decision_regions(
        "spiral: 2-64-64-3 MLP, decision regions",
        &report.data,
        &report.model,
        &path,
    )?;
    if !quick && report.accuracy < 0.98 {
        eprintln!("spiral: expected at least 98% training accuracy");
        std::process::exit(1);
    }
    Ok(())
}
