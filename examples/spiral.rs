//! Three interleaved spiral arms (CS231n's data), classified by a 2-64-64-3 ReLU MLP with softmax
//! cross-entropy and Adam, in mini-batches.
//!
//! Run with `cargo run --release --example spiral` (add `--quick` for a short run of the same code).
//! `tests/nn.rs` runs [`train`] too and checks the accuracy.

use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

/// Loss and training accuracy after a run.
#[derive(Debug)]
pub struct Report {
    /// The mean cross-entropy over the whole training set after the last epoch.
    pub loss: f32,
    /// The fraction of points classified correctly after the last epoch.
    pub accuracy: f64,
}

/// 300 points (100 per class, angle noise 0.2); mini-batches of 32, shuffled with a seed;
/// Adam with lr 0.01 for `epochs` epochs. Evaluation runs in `no_grad`.
pub fn train(epochs: usize, verbose: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(0);
    let data = tapegrad::data::spirals::<f32, _>(100, 3, 0.2, &mut rng);
    let labels = data.labels();

    let model = Mlp::new(&[2, 64, 64, 3], Activation::Relu, &mut rng);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 0.01,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut report = Report {
        loss: f32::NAN,
        accuracy: 0.0,
    };
    for epoch in 0..epochs {
        for batch in data.batches(32).shuffle(&mut rng) {
            tape.reset();
            let logits = model.forward(&tape, tape.constant(batch.features.clone()));
            let grads = loss::cross_entropy(logits, &batch.labels()).backward();
            tape.reset(); // free the tape's hold on the parameters so the update is in place
            opt.step(&grads);
        }
        tape.reset();
        let (loss, logits) = tape.no_grad(|| {
            let logits = model.forward(&tape, tape.constant(data.features.clone()));
            (loss::cross_entropy(logits, &labels).item(), logits.value())
        });
        let correct = logits
            .as_slice()
            .chunks(3)
            .zip(&labels)
            .filter(|(row, label)| {
                let best = (0..3).fold(0, |b, c| if row[c] > row[b] { c } else { b });
                best == **label
            })
            .count();
        report = Report {
            loss,
            accuracy: correct as f64 / labels.len() as f64,
        };
        if verbose && (epoch % 20 == 0 || epoch + 1 == epochs) {
            println!(
                "epoch {epoch:3}  loss {:.4}  accuracy {:.1}%",
                report.loss,
                100.0 * report.accuracy
            );
        }
    }
    report
}

#[allow(dead_code)] // the test includes this file for `train` only
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let report = train(if quick { 10 } else { 100 }, true);
    println!(
        "final: loss {:.4}, training accuracy {:.1}%",
        report.loss,
        100.0 * report.accuracy
    );
    if !quick && report.accuracy < 0.98 {
        eprintln!("spiral: expected at least 98% training accuracy");
        std::process::exit(1);
    }
}
