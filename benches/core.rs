//! Core-engine workloads from WORKLOADS.md: W3 op-overhead, W4 gemm, W5 scalar-chain.
//! Run with `cargo bench --bench core`; figures and peers are in BENCHMARKS.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor};

/// W3: x: [16]; 1000 times x = tanh(x * w_i + b_i) with leaf w_i, b_i; loss = sum(x); backward.
/// Reported per recorded op: total forward + backward time / 3000.
fn w3_op_overhead(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let ws: Vec<Tensor<f32>> = (0..1000).map(|_| Tensor::randn(&[16], &mut rng) * 0.5).collect();
    let bs: Vec<Tensor<f32>> = (0..1000).map(|_| Tensor::randn(&[16], &mut rng) * 0.1).collect();
    let x0 = Tensor::<f32>::randn(&[16], &mut rng);
    let mut tape = Tape::<f32>::with_capacity(6000);
    let mut group = c.benchmark_group("W3 op-overhead");
    group.throughput(Throughput::Elements(3000));
    group.bench_function("fwd+bwd, 3000 ops on [16]", |bench| {
        bench.iter(|| {
            tape.reset();
            let mut x = tape.var(x0.clone());
            for (w, b) in ws.iter().zip(&bs) {
                x = (x * tape.var(w.clone()) + tape.var(b.clone())).tanh();
            }
            black_box(x.sum().backward());
        })
    });
    group.finish();
}

/// W4: A, B: 1024x1024 leaves; C = A @ B; loss = sum(C); backward (3 GEMMs), at 1 and 2 threads.
/// GFLOP/s = 3 * 2 * 1024^3 / time.
fn w4_gemm(c: &mut Criterion) {
    const N: usize = 1024;
    let mut rng = StdRng::seed_from_u64(4);
    let a = Tensor::<f32>::randn(&[N, N], &mut rng);
    let b = Tensor::<f32>::randn(&[N, N], &mut rng);
    let mut group = c.benchmark_group("W4 gemm");
    group.throughput(Throughput::Elements(3 * 2 * (N as u64).pow(3)));
    group.sample_size(20);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        group.bench_function(format!("1024x1024 fwd+bwd, {threads} thread(s)"), |bench| {
            bench.iter(|| {
                let tape = Tape::<f32>::new();
                let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
                black_box(va.matmul(&vb).sum().backward());
            })
        });
    }
    tapegrad::set_num_threads(0);
    group.finish();
}

/// W5: y0 = x; y_{k+1} = y_k * a + b on scalar leaves, 1,000,000 nodes, then backward.
fn w5_scalar_chain(c: &mut Criterion) {
    const NODES: usize = 1_000_000;
    let mut tape = Tape::<f32>::with_capacity(NODES + 8);
    let mut group = c.benchmark_group("W5 scalar-chain");
    group.throughput(Throughput::Elements(NODES as u64));
    group.sample_size(20);
    group.bench_function("fwd+bwd, 1M scalar nodes", |bench| {
        bench.iter(|| {
            tape.reset();
            let (x, a, b) = (tape.var(0.5f32), tape.var(0.999f32), tape.var(0.001f32));
            let mut y = x;
            for _ in 0..NODES / 2 {
                y = y * a + b;
            }
            black_box(y.backward());
        })
    });
    group.finish();
}

criterion_group!(benches, w3_op_overhead, w4_gemm, w5_scalar_chain);
criterion_main!(benches);
