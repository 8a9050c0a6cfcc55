//! `functional::jvp` (double backward) against `functional::vjp` on the same function (issue 16):
//! an MLP-like map of a 256-vector, `f(x) = tanh(tanh(x W₁ + b₁) W₂ + b₂)` with 256 × 256
//! weights, in f32, beside recording `f` alone. Run with `cargo bench --bench functional` and
//! record the figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor, Var, functional};

const N: usize = 256;

fn jvp_vs_vjp(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(16);
    let scale = 1.0 / (N as f32).sqrt();
    let w1 = Tensor::<f32>::randn(&[N, N], &mut rng).map(|a| a * scale);
    let w2 = Tensor::<f32>::randn(&[N, N], &mut rng).map(|a| a * scale);
    let b1 = Tensor::<f32>::randn(&[1, N], &mut rng);
    let b2 = Tensor::<f32>::randn(&[1, N], &mut rng);
    let x = Tensor::<f32>::randn(&[1, N], &mut rng);
    let v = Tensor::<f32>::randn(&[1, N], &mut rng);
    let u = Tensor::<f32>::randn(&[1, N], &mut rng);
    let f = functional::function(|tape: &Tape<f32>, x: Var<f32>| {
        let h = (x.matmul(&tape.constant(w1.clone())) + tape.constant(b1.clone())).tanh();
        (h.matmul(&tape.constant(w2.clone())) + tape.constant(b2.clone())).tanh()
    });

    let mut group = c.benchmark_group("functional");
    group.bench_function("functional forward only, 256-vector MLP f32", |b| {
        b.iter(|| {
            let tape = Tape::new();
            f(&tape, tape.var(black_box(&x).clone())).value()
        })
    });
    group.bench_function("functional vjp, 256-vector MLP f32", |b| {
        b.iter(|| functional::vjp(f, black_box(&x), black_box(&u)))
    });
    group.bench_function("functional jvp (double backward), 256-vector MLP f32", |b| {
        b.iter(|| functional::jvp(f, black_box(&x), black_box(&v)))
    });
    group.finish();
}

criterion_group!(benches, jvp_vs_vjp);
criterion_main!(benches);
