//! micrograd's demo with tensors: a 2-16-16-1 ReLU MLP separates two moons with a max-margin loss,
//! reaching 100% training accuracy in 100 steps of SGD.
//!
//! Run with `cargo run --release --example moons` (add `--quick` for a short run of the same code).
//! `tests/nn.rs` runs [`train`] too and checks the accuracy.

mod common;

use tapegrad::nn::init;
use tapegrad::prelude::*;
use tapegrad::rand::{SeedableRng, rngs::StdRng};

/// Loss and training accuracy after a run, and the trained model.
#[derive(Debug)]
pub struct Report {
    /// The last step's loss (data term plus L2 term).
    pub loss: f32,
    /// The fraction of points on the right side of the decision boundary.
    pub accuracy: f64,
    /// The trained network.
    pub model: Mlp<f32>,
    /// The training data (labels 0 and 1).
    pub data: tapegrad::data::Dataset<f32>,
}

/// micrograd's `demo.ipynb`: 100 moons with noise 0.1, labels ±1; loss
/// `mean(relu(1 - y·score)) + 1e-4 Σ p²`; full-batch SGD with `lr = 1 - 0.9 k / 100` at step `k`.
pub fn train(steps: usize, verbose: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(1337);
    let data = tapegrad::data::moons::<f32, _>(100, 0.1, &mut rng);
    let x = data.features.clone();
    let y = data.targets.map(|label| 2.0 * label - 1.0).reshape(&[100, 1]); // 0/1 → -1/+1

    let model = Mlp::new(&[2, 16, 16, 1], Activation::Relu, &mut rng);
    // micrograd's initialisation: weights U(-1, 1), biases 0. PyTorch's default (U(±1/√in)) starts
    // so small that 100 steps of this schedule stop near 88%.
    for layer in &model.layers {
        layer
            .weight
            .set_value(init::uniform(&layer.weight.shape(), -1.0, 1.0, &mut rng));
        if let Some(b) = &layer.bias {
            b.set_value(Tensor::zeros(&b.shape()));
        }
    }
    let mut opt = Sgd::new(
        model.parameters(),
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let (mut last_loss, mut accuracy) = (f32::NAN, 0.0);
    for k in 0..steps {
        tape.reset();
        let scores = model.forward(&tape, tape.constant(x.clone()));
        let yv = tape.constant(y.clone());
        let data_loss = (1.0 - yv * scores).relu().mean();
        let l2 = model
            .parameters()
            .iter()
            .map(|p| {
                let v = tape.param(p);
                (v * v).sum()
            })
            .reduce(|a, b| a + b)
            .expect("the model has parameters");
        let loss = data_loss + 1e-4 * l2;
        let correct = scores
            .value()
            .as_slice()
            .iter()
            .zip(y.as_slice())
            .filter(|(s, t)| (**s > 0.0) == (**t > 0.0))
            .count();
        (last_loss, accuracy) = (loss.item(), correct as f64 / 100.0);
        let grads = loss.backward();
        tape.reset(); // free the tape's hold on the parameters so the update is in place
        opt.set_lr(1.0 - 0.9 * k as f64 / 100.0);
        opt.step(&grads);
        if verbose && (k % 10 == 0 || k + 1 == steps) {
            println!(
                "step {k:3}  loss {:.6}  accuracy {:.0}%",
                last_loss,
                100.0 * accuracy
            );
        }
    }
    Report {
        loss: last_loss,
        accuracy,
        model,
        data,
    }
}

#[allow(dead_code)] // the test includes this file for `train` only
fn main() -> Result<(), tapegrad::Error> {
    let quick = std::env::args().any(|a| a == "--quick");
    let report = train(if quick { 20 } else { 100 }, true);
    println!(
        "final: loss {:.6}, training accuracy {:.0}%",
        report.loss,
        100.0 * report.accuracy
    );
    let path = common::out_dir().join("moons_boundary.svg");
    common::write_decision_regions(
        "moons: 2-16-16-1 MLP, score > 0 means class 1",
        &report.data,
        &report.model,
        &path,
    )?;
    if !quick && report.accuracy < 1.0 {
        eprintln!("moons: expected 100% training accuracy");
        std::process::exit(1);
    }
    Ok(())
}
