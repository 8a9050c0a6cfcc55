//! The ops of issue 14 on 2^20-element f32 tensors, forward and forward + backward of a seed of
//! ones, at one and two threads; and `einsum("bhqd,bhkd->bhqk")` against the equivalent `matmul`.
//! `benches/peers/torch_ops.py` times the same work in PyTorch; figures are in BENCHMARKS.md.
//!
//! Run with `cargo bench --bench ops` (add a filter such as `-- gather` for one op).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor, Var};

const N: usize = 1 << 20;

/// An op under test: from its input vars to its output.
type Workload = for<'t> fn(&[Var<'t, f32>], &Inputs) -> Var<'t, f32>;

/// The constant arguments of the workloads (indices and masks), drawn once.
struct Inputs {
    rows: Tensor<usize>,
    cols: Tensor<usize>,
    mask: Tensor<bool>,
}

fn ops(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(14);
    let inputs = Inputs {
        rows: Tensor::from_vec((0..1024).map(|_| rng.random_range(0..1024)).collect(), &[1024]),
        cols: Tensor::from_vec((0..N).map(|_| rng.random_range(0..1024)).collect(), &[1024, 1024]),
        mask: Tensor::from_vec((0..N).map(|_| rng.random_bool(0.5)).collect(), &[1024, 1024]),
    };
    let square = || Tensor::<f32>::randn(&[1024, 1024], &mut StdRng::seed_from_u64(1));
    let workloads: Vec<(&str, Vec<Tensor<f32>>, Workload)> = vec![
        (
            "cat [1024, 512] x2, axis 1",
            vec![
                Tensor::randn(&[1024, 512], &mut rng),
                Tensor::randn(&[1024, 512], &mut rng),
            ],
            |v, _| Var::cat(v, 1),
        ),
        (
            "permute [64, 128, 128] -> [1, 2, 0]",
            vec![Tensor::randn(&[64, 128, 128], &mut rng)],
            |v, _| v[0].permute(&[1, 2, 0]),
        ),
        ("index_select [1024, 1024], 1024 rows", vec![square()], |v, i| {
            v[0].index_select(0, &i.rows)
        }),
        ("gather [1024, 1024], axis 1", vec![square()], |v, i| {
            v[0].gather(1, &i.cols)
        }),
        ("masked_fill [1024, 1024]", vec![square()], |v, i| {
            v[0].masked_fill(&i.mask, 0.0)
        }),
        ("where_cond [1024, 1024]", vec![square(), square()], |v, i| {
            Var::where_cond(&i.mask, v[0], v[1])
        }),
        ("logsumexp [1024, 1024], axis 1", vec![square()], |v, _| {
            v[0].logsumexp(1, false)
        }),
        ("cumsum [1024, 1024], axis 1", vec![square()], |v, _| {
            v[0].cumsum(1)
        }),
        ("gelu [2^20]", vec![Tensor::randn(&[N], &mut rng)], |v, _| {
            v[0].gelu()
        }),
        ("softplus [2^20]", vec![Tensor::randn(&[N], &mut rng)], |v, _| {
            v[0].softplus()
        }),
    ];
    let mut group = c.benchmark_group("ops");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(30);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        for (name, values, op) in &workloads {
            let seed = {
                let tape = Tape::<f32>::new();
                let vars: Vec<_> = values.iter().map(|x| tape.var(x.clone())).collect();
                Tensor::ones(&op(&vars, &inputs).shape())
            };
            group.bench_function(
                BenchmarkId::new(format!("{name} fwd"), format!("{threads}t")),
                |b| {
                    b.iter(|| {
                        let tape = Tape::<f32>::new();
                        let vars: Vec<_> = values.iter().map(|x| tape.constant(x.clone())).collect();
                        black_box(op(&vars, &inputs).value());
                    })
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("{name} fwd+bwd"), format!("{threads}t")),
                |b| {
                    b.iter(|| {
                        let tape = Tape::<f32>::new();
                        let vars: Vec<_> = values.iter().map(|x| tape.var(x.clone())).collect();
                        black_box(op(&vars, &inputs).backward_with_seed(seed.clone()));
                    })
                },
            );
        }
    }
    tapegrad::set_num_threads(0);
    group.finish();
}

/// Attention scores both ways: `einsum` must lower to the same batched GEMMs as `matmul`.
fn einsum_vs_matmul(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(15);
    let q = Tensor::<f32>::randn(&[8, 8, 128, 64], &mut rng);
    let k = Tensor::<f32>::randn(&[8, 8, 128, 64], &mut rng);
    let seed = Tensor::<f32>::ones(&[8, 8, 128, 128]);
    let mut group = c.benchmark_group("einsum");
    group.sample_size(30);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        group.bench_function(
            BenchmarkId::new("einsum bhqd,bhkd->bhqk fwd+bwd", format!("{threads}t")),
            |b| {
                b.iter(|| {
                    let tape = Tape::<f32>::new();
                    let (q, k) = (tape.var(q.clone()), tape.var(k.clone()));
                    black_box(Var::einsum("bhqd,bhkd->bhqk", &[q, k]).backward_with_seed(seed.clone()));
                })
            },
        );
        group.bench_function(
            BenchmarkId::new("matmul q @ k^T fwd+bwd", format!("{threads}t")),
            |b| {
                b.iter(|| {
                    let tape = Tape::<f32>::new();
                    let (q, k) = (tape.var(q.clone()), tape.var(k.clone()));
                    black_box(q.matmul(&k.transpose(2, 3)).backward_with_seed(seed.clone()));
                })
            },
        );
    }
    tapegrad::set_num_threads(0);
    group.finish();
}

criterion_group!(benches, ops, einsum_vs_matmul);
criterion_main!(benches);
