//! A small convolutional network on synthetic 12x12 images of bars: which way does the bar run,
//! horizontal, vertical, diagonal (↘) or anti-diagonal (↙)? Each image holds one bar of 4 to 6
//! pixels at a random place, on Gaussian noise.
//!
//! Conv2d(1→8, 3x3, padding 1) → ReLU → MaxPool2d(2) → Conv2d(8→16, 3x3) → ReLU → Flatten →
//! Linear(256→4), trained with Adam on softmax cross-entropy in mini-batches.
//!
//! Run with `cargo run --release --example cnn` (add `--quick` for a short run of the same code;
//! `--out DIR` is accepted for uniformity with the other examples and ignored: nothing is
//! written). `tests/conv.rs` runs [`train`] too and checks the accuracy.

use tapegrad::data::Dataset;
use tapegrad::prelude::*;
use tapegrad::rand::rngs::StdRng;
use tapegrad::rand::{RngExt, SeedableRng};

/// Image side.
pub const SIDE: usize = 12;
/// The four orientations.
pub const CLASSES: usize = 4;
/// Epochs of a full run (the test runs this many).
pub const EPOCHS: usize = 6;

/// Loss and accuracies after a run.
#[derive(Debug)]
pub struct Report {
    /// The mean cross-entropy over the training set after the last epoch.
    pub loss: f32,
    /// The fraction of training images classified correctly after the last epoch.
    pub train_accuracy: f64,
    /// The fraction of held-out images classified correctly after the last epoch.
    pub test_accuracy: f64,
}

/// `n` images `[n, 1, SIDE, SIDE]` with their classes: 0 horizontal, 1 vertical, 2 diagonal,
/// 3 anti-diagonal. A bar of length 4..=6 at a random place where it fits, pixel value 1, on
/// noise of standard deviation 0.2.
pub fn bars(n: usize, rng: &mut StdRng) -> Dataset<f32> {
    let mut pixels = Tensor::<f32>::randn(&[n, 1, SIDE, SIDE], rng).map(|v| 0.2 * v);
    let mut labels = Vec::with_capacity(n);
    let image = pixels.as_mut_slice();
    for k in 0..n {
        let class = rng.random_range(0..CLASSES);
        let len = rng.random_range(4..=6);
        let (dy, dx): (isize, isize) = [(0, 1), (1, 0), (1, 1), (1, -1)][class];
        // The start leaves room for the bar in each direction it runs.
        let span = |d: isize| if d == 0 { 0..SIDE } else { 0..SIDE - len + 1 };
        let y0 = rng.random_range(span(dy));
        let x0 = rng.random_range(span(dx));
        let x0 = if dx < 0 { x0 + len - 1 } else { x0 };
        for t in 0..len as isize {
            let (y, x) = ((y0 as isize + t * dy) as usize, (x0 as isize + t * dx) as usize);
            image[k * SIDE * SIDE + y * SIDE + x] = 1.0;
        }
        labels.push(class as f32);
    }
    Dataset::new(pixels, Tensor::from_vec(labels, &[n]))
}

/// The network: two convolutions with a pooling step between them, and a linear head.
pub fn model(rng: &mut StdRng) -> Sequential<f32> {
    Sequential::new()
        .with(Conv2d::new(1, 8, (3, 3), rng).with_padding((1, 1))) // [N, 8, 12, 12]
        .with(Activation::Relu)
        .with(MaxPool2d::new((2, 2))) // [N, 8, 6, 6]
        .with(Conv2d::new(8, 16, (3, 3), rng)) // [N, 16, 4, 4]
        .with(Activation::Relu)
        .with(Flatten) // [N, 256]
        .with(Linear::new(16 * 4 * 4, CLASSES, rng))
}

/// The fraction of rows of `logits` `[N, CLASSES]` whose largest entry is at the label.
fn accuracy(logits: &Tensor<f32>, labels: &[usize]) -> f64 {
    let correct = logits
        .as_slice()
        .chunks(CLASSES)
        .zip(labels)
        .filter(|(row, label)| {
            let best = (0..CLASSES).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            best == **label
        })
        .count();
    correct as f64 / labels.len() as f64
}

/// 1200 training and 400 test images; mini-batches of 32, shuffled with a seed; Adam with
/// lr 0.01 for `epochs` epochs. Evaluation runs in `no_grad`.
pub fn train(epochs: usize, verbose: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(0);
    let train_set = bars(1200, &mut rng);
    let test_set = bars(400, &mut rng);
    let (train_labels, test_labels) = (train_set.labels(), test_set.labels());

    let model = model(&mut rng);
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
        train_accuracy: 0.0,
        test_accuracy: 0.0,
    };
    for epoch in 0..epochs {
        for batch in train_set.batches(32).shuffle(&mut rng) {
            tape.reset();
            let logits = model.forward(&tape, tape.constant(batch.features.clone()));
            let grads = loss::cross_entropy(logits, &batch.labels()).backward();
            tape.reset(); // free the tape's hold on the parameters so the update is in place
            opt.step(&grads);
        }
        tape.reset();
        let (loss, train_logits, test_logits) = tape.no_grad(|| {
            let logits = model.forward(&tape, tape.constant(train_set.features.clone()));
            let test = model.forward(&tape, tape.constant(test_set.features.clone()));
            (
                loss::cross_entropy(logits, &train_labels).item(),
                logits.value(),
                test.value(),
            )
        });
        report = Report {
            loss,
            train_accuracy: accuracy(&train_logits, &train_labels),
            test_accuracy: accuracy(&test_logits, &test_labels),
        };
        if verbose {
            println!(
                "epoch {epoch:2}  loss {:.4}  train accuracy {:.1}%  test accuracy {:.1}%",
                report.loss,
                100.0 * report.train_accuracy,
                100.0 * report.test_accuracy
            );
        }
    }
    report
}

#[allow(dead_code)] // the test includes this file for `train` only
fn main() {
    // `--out DIR` is accepted (every example takes it) and ignored: this one writes nothing.
    let quick = std::env::args().any(|a| a == "--quick");
    let report = train(if quick { 1 } else { EPOCHS }, true);
    println!(
        "final: loss {:.4}, train accuracy {:.1}%, test accuracy {:.1}%",
        report.loss,
        100.0 * report.train_accuracy,
        100.0 * report.test_accuracy
    );
    if !quick && report.test_accuracy < 0.95 {
        eprintln!("cnn: expected at least 95% test accuracy");
        std::process::exit(1);
    }
}
