//! micrograd's demo as micrograd writes it: every weight is its own number, and every neuron is
//! `b + Σ wᵢ·xᵢ` built from scalar nodes, one multiply and one add at a time (W1 in the project's
//! WORKLOADS.md). About 65,000 nodes per step; the `moons` example does the same with tensors.
//!
//! Run with `cargo run --release --example micrograd_moons` (`--quick` for a short run).
//! `benches/nn.rs` times [`ScalarMlp::step`], and `tests/nn.rs` checks that [`train`] reaches 100%.

use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

/// micrograd's `MLP(2, [16, 16, 1])`: ReLU neurons, a linear output neuron, weights U(-1, 1),
/// biases 0. Each weight is a rank-0 [`Param`].
pub struct ScalarMlp {
    /// Layer sizes, inputs first: `[2, 16, 16, 1]`.
    pub sizes: Vec<usize>,
    /// For each layer, for each neuron: its weights, then its bias.
    pub params: Vec<Param<f64>>,
    opt: Sgd<f64>,
}

/// Where a run ended.
#[derive(Debug)]
pub struct Report {
    /// The last step's loss (data term plus L2 term).
    pub loss: f64,
    /// The fraction of points on the right side of the boundary at the last step.
    pub accuracy: f64,
}

impl ScalarMlp {
    /// A network with micrograd's initialisation.
    pub fn new(sizes: &[usize], rng: &mut StdRng) -> Self {
        let mut params = Vec::new();
        for pair in sizes.windows(2) {
            for _neuron in 0..pair[1] {
                for _input in 0..pair[0] {
                    params.push(Param::new(Tensor::scalar(rng.random_range(-1.0..1.0))));
                }
                params.push(Param::new(Tensor::scalar(0.0)));
            }
        }
        let opt = Sgd::new(params.clone(), SgdConfig::default());
        ScalarMlp {
            sizes: sizes.to_vec(),
            params,
            opt,
        }
    }

    /// The network's score for one point, from the parameters bound on the tape (`weights`).
    fn score<'t>(&self, weights: &[Var<'t, f64>], point: &[Var<'t, f64>]) -> Var<'t, f64> {
        let mut inputs = point.to_vec();
        let mut next = 0;
        let layers = self.sizes.len() - 1;
        for (layer, pair) in self.sizes.windows(2).enumerate() {
            let outputs = (0..pair[1])
                .map(|_| {
                    let (w, b) = (&weights[next..next + pair[0]], weights[next + pair[0]]);
                    next += pair[0] + 1;
                    let act = w.iter().zip(&inputs).fold(b, |acc, (&wi, &xi)| acc + wi * xi);
                    if layer + 1 < layers { act.relu() } else { act }
                })
                .collect();
            inputs = outputs;
        }
        inputs[0]
    }

    /// One step of micrograd's demo on `tape`: max-margin loss over every point plus
    /// `1e-4 Σ p²`, backward, and SGD with learning rate `lr`. Returns the loss and the accuracy.
    pub fn step(&mut self, tape: &mut Tape<f64>, points: &[[f64; 2]], labels: &[f64], lr: f64) -> (f64, f64) {
        tape.reset();
        let weights: Vec<Var<f64>> = self.params.iter().map(|p| tape.param(p)).collect();
        let mut data_loss = tape.constant(0.0);
        let mut correct = 0;
        for (point, &y) in points.iter().zip(labels) {
            let xs = [tape.constant(point[0]), tape.constant(point[1])];
            let score = self.score(&weights, &xs);
            if (score.item() > 0.0) == (y > 0.0) {
                correct += 1;
            }
            data_loss = data_loss + (1.0 - y * score).relu();
        }
        let data_loss = data_loss * (1.0 / points.len() as f64);
        let l2 = weights.iter().fold(tape.constant(0.0), |acc, &w| acc + w * w);
        let loss = data_loss + 1e-4 * l2;
        let loss_value = loss.item();
        let grads = loss.backward();
        tape.reset(); // free the tape's hold on the parameters so the update is in place
        self.opt.set_lr(lr);
        self.opt.step(&grads);
        (loss_value, correct as f64 / points.len() as f64)
    }
}

/// The demo's data: 100 moons with noise 0.1, labels ±1.
pub fn moons() -> (Vec<[f64; 2]>, Vec<f64>) {
    let data = tapegrad::data::moons::<f64, _>(100, 0.1, &mut StdRng::seed_from_u64(1337));
    let points = data.features.as_slice().chunks(2).map(|p| [p[0], p[1]]).collect();
    let labels = data.targets.as_slice().iter().map(|&l| 2.0 * l - 1.0).collect();
    (points, labels)
}

/// `steps` steps of the demo with micrograd's schedule `lr = 1 - 0.9 k / 100`.
pub fn train(steps: usize, verbose: bool) -> Report {
    let (points, labels) = moons();
    let mut model = ScalarMlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(1));
    let mut tape = Tape::new();
    let mut report = Report {
        loss: f64::NAN,
        accuracy: 0.0,
    };
    for k in 0..steps {
        let (loss, accuracy) = model.step(&mut tape, &points, &labels, 1.0 - 0.9 * k as f64 / 100.0);
        report = Report { loss, accuracy };
        if verbose && (k % 10 == 0 || k + 1 == steps) {
            println!("step {k:3}  loss {loss:.6}  accuracy {:.0}%", 100.0 * accuracy);
        }
    }
    report
}

#[allow(dead_code)] // tests and benches include this file for `train` and `ScalarMlp` only
fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let start = std::time::Instant::now();
    let steps = if quick { 10 } else { 100 };
    let report = train(steps, true);
    let tape = Tape::<f64>::new();
    let nodes = {
        let model = ScalarMlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(1));
        let weights: Vec<Var<f64>> = model.params.iter().map(|p| tape.param(p)).collect();
        let xs = [tape.constant(0.5), tape.constant(0.5)];
        let before = tape.len();
        model.score(&weights, &xs);
        tape.len() - before
    };
    println!(
        "final: loss {:.6}, accuracy {:.0}%; {steps} steps in {:.2} s ({nodes} scalar nodes per point)",
        report.loss,
        100.0 * report.accuracy,
        start.elapsed().as_secs_f64()
    );
    if !quick && report.accuracy < 1.0 {
        eprintln!("micrograd_moons: expected 100% training accuracy");
        std::process::exit(1);
    }
}
