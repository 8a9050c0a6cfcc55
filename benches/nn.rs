//! Tensor MLP training steps (issue 4), workloads W1t and W2 of WORKLOADS.md, in ms per step
//! (tape reset + forward + backward + optimizer update). Run with `cargo bench --bench nn`;
//! figures are in BENCHMARKS.md.
//!
//! - W1: micrograd's demo built from scalar nodes as micrograd builds it (one node per multiply and
//!   add, about 65,000 per step), from `examples/micrograd_moons.rs`.
//! - W1t: micrograd's demo as a user writes it with tensors: MLP 2-16-16-1 (ReLU) over the whole
//!   batch of 100 moons (noise 0.1), loss `mean(relu(1 - y·score)) + 1e-4 Σ p²`, SGD.
//! - W2: MLP 784-256-128-10 (ReLU), batch 64, softmax cross-entropy, Adam lr 1e-3; inputs N(0, 1),
//!   labels uniform in 0..10; on 1 and 2 threads.
//! - conv: a small CNN step (issue 4, no workload id): batch 32 of 1x28x28 images N(0, 1),
//!   Conv2d(1→8, 3x3, pad 1) → ReLU → MaxPool2d(2) → Conv2d(8→16, 3x3, pad 1) → ReLU →
//!   MaxPool2d(2) → Flatten → Linear(784→10), cross-entropy, Adam; and the first convolution's
//!   forward + backward alone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

#[allow(dead_code)] // the bench uses `ScalarMlp` and `moons` only
#[path = "../examples/micrograd_moons.rs"]
mod micrograd_moons;

fn w1(c: &mut Criterion) {
    let (points, labels) = micrograd_moons::moons();
    let mut model = micrograd_moons::ScalarMlp::new(&[2, 16, 16, 1], &mut StdRng::seed_from_u64(1));
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("W1");
    group.sample_size(20);
    group.bench_function(
        "W1 scalar-mlp: 2-16-16-1 from scalar nodes, 100 moons, SGD step",
        |b| b.iter(|| black_box(model.step(&mut tape, &points, &labels, 0.1))),
    );
    group.finish();
}

fn w1t(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let data = tapegrad::data::moons::<f32, _>(100, 0.1, &mut rng);
    let x = data.features.clone();
    let y = data.targets.map(|l| 2.0 * l - 1.0).reshape(&[100, 1]);
    let model = Mlp::new(&[2, 16, 16, 1], Activation::Relu, &mut rng);
    let params = model.parameters();
    let mut opt = Sgd::new(
        params.clone(),
        SgdConfig {
            lr: 0.1,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    c.bench_function("W1t tensor-mlp-small: 2-16-16-1, batch 100, SGD step", |b| {
        b.iter(|| {
            tape.reset();
            let scores = model.forward(&tape, tape.constant(x.clone()));
            let data_loss = (1.0 - tape.constant(y.clone()) * scores).relu().mean();
            let l2 = params
                .iter()
                .map(|p| {
                    let v = tape.param(p);
                    (v * v).sum()
                })
                .reduce(|a, b| a + b)
                .unwrap();
            let grads = (data_loss + 1e-4 * l2).backward();
            tape.reset();
            opt.step(black_box(&grads));
        })
    });
}

fn w2(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let x = Tensor::<f32>::randn(&[64, 784], &mut rng);
    let labels: Vec<usize> = (0..64).map(|_| rng.random_range(0..10)).collect();
    let model = Mlp::new(&[784, 256, 128, 10], Activation::Relu, &mut rng);
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("W2");
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.sample_size(20);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        let name = format!("W2 tensor-mlp: 784-256-128-10, batch 64, Adam step, {threads} thread(s)");
        group.bench_function(name, |b| {
            b.iter(|| {
                tape.reset();
                let logits = model.forward(&tape, tape.constant(x.clone()));
                let grads = loss::cross_entropy(logits, &labels).backward();
                tape.reset();
                opt.step(black_box(&grads));
            })
        });
    }
    group.finish();
}

fn conv(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let x = Tensor::<f32>::randn(&[32, 1, 28, 28], &mut rng);
    let labels: Vec<usize> = (0..32).map(|_| rng.random_range(0..10)).collect();
    let model = Sequential::new()
        .with(Conv2d::new(1, 8, (3, 3), &mut rng).with_padding((1, 1)))
        .with(Activation::Relu)
        .with(MaxPool2d::new((2, 2)))
        .with(Conv2d::new(8, 16, (3, 3), &mut rng).with_padding((1, 1)))
        .with(Activation::Relu)
        .with(MaxPool2d::new((2, 2)))
        .with(Flatten)
        .with(Linear::new(16 * 7 * 7, 10, &mut rng));
    let mut opt = Adam::new(model.parameters(), AdamConfig::default());
    let conv1 = Conv2d::new(1, 8, (3, 3), &mut rng).with_padding((1, 1));
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("conv");
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.sample_size(20);
    tapegrad::set_num_threads(1);
    group.bench_function(
        "cnn step: 2 conv + 2 pool + linear, batch 32 of 28x28, Adam, 1 thread",
        |b| {
            b.iter(|| {
                tape.reset();
                let logits = model.forward(&tape, tape.constant(x.clone()));
                let grads = loss::cross_entropy(logits, &labels).backward();
                tape.reset();
                opt.step(black_box(&grads));
            })
        },
    );
    group.bench_function(
        "conv2d 1→8 3x3 pad 1, batch 32 of 28x28, forward + backward",
        |b| {
            b.iter(|| {
                tape.reset();
                let y = conv1.forward(&tape, tape.var(x.clone()));
                black_box(y.sum().backward());
            })
        },
    );
    group.finish();
}

criterion_group!(benches, w1, w1t, w2, conv);
criterion_main!(benches);
