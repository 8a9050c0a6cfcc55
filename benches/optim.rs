//! Optimizer step on one million `f32` parameters (issue 3): Adam and SGD with momentum, in ns per
//! parameter, beside plain memory-bound loops over the same amount of data, which bound what a
//! step can reach. Run with `cargo bench --bench optim`; figures are in BENCHMARKS.md.
//!
//! Bytes moved per parameter and step: Adam reads θ, g, m, v and writes θ, m, v (28 bytes in
//! `f32`); SGD with momentum reads θ, g, b and writes θ, b (20 bytes).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapegrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Gradients, Param, Tape, Tensor};

const N: usize = 1 << 20;

/// A parameter of `N` elements and its gradient; the tape is gone, so the step writes in place.
fn param_and_grads(seed: u64) -> (Param<f32>, Gradients<f32>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = Param::new(Tensor::<f32>::randn(&[N], &mut rng));
    let c = Tensor::<f32>::randn(&[N], &mut rng);
    let grads = {
        let tape = Tape::new();
        (tape.param(&w) * tape.constant(c)).sum().backward()
    };
    (w, grads)
}

fn optim_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("optim-step");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(50);

    let (w, grads) = param_and_grads(1);
    let mut adam = Adam::new(vec![w], AdamConfig::default());
    group.bench_function("optim-step Adam f32, 1M params", |b| {
        b.iter(|| adam.step(black_box(&grads)))
    });

    let (w, grads) = param_and_grads(2);
    let config = SgdConfig {
        lr: 1e-3,
        momentum: 0.9,
        ..Default::default()
    };
    let mut sgd = Sgd::new(vec![w], config);
    group.bench_function("optim-step Sgd momentum f32, 1M params", |b| {
        b.iter(|| sgd.step(black_box(&grads)))
    });

    // Memory-bound references over the same data sizes, per element.
    let mut rng = StdRng::seed_from_u64(3);
    let mut streams: Vec<Vec<f32>> = (0..4)
        .map(|_| Tensor::<f32>::randn(&[N], &mut rng).to_vec())
        .collect();
    let mut dst = vec![0f32; N];
    group.bench_function("optim-step reference: memcpy 1M f32 (8 B/elem)", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&streams[0])))
    });
    group.bench_function(
        "optim-step reference: triad a = b + s·c, 1M f32 (12 B/elem)",
        |b| {
            b.iter(|| {
                let (a, rest) = streams.split_at_mut(1);
                for ((a, &x), &y) in a[0].iter_mut().zip(&rest[0]).zip(&rest[1]) {
                    *a = x + 0.5 * y;
                }
                black_box(&a[0]);
            })
        },
    );
    group.bench_function(
        "optim-step reference: Adam's streams, 4 read 3 written, 1M f32 (28 B/elem)",
        |b| {
            b.iter(|| {
                let (g, rest) = streams.split_first_mut().expect("4 streams");
                let [p, m, v] = rest else { unreachable!() };
                for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g.iter()) {
                    *m += g;
                    *v += g;
                    *p -= 1e-9 * g;
                }
                black_box(&p);
            })
        },
    );
    group.finish();

    // DRAM bandwidth: a copy much larger than the 8 MiB L3 cache.
    let mut group = c.benchmark_group("optim-step memory");
    const BIG: usize = 1 << 25; // 128 MiB of f32
    group.throughput(Throughput::Bytes(2 * 4 * BIG as u64));
    group.sample_size(20);
    let src = vec![1f32; BIG];
    let mut dst = vec![0f32; BIG];
    group.bench_function(
        "optim-step reference: memcpy 128 MiB (bytes read + written)",
        |b| b.iter(|| dst.copy_from_slice(black_box(&src))),
    );
    group.finish();
}

criterion_group!(benches, optim_step);
criterion_main!(benches);
