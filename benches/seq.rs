//! Sequence-model training steps (issue 15), workloads W7 and W8 of WORKLOADS.md, in ms per step
//! (tape reset + forward + backward + optimizer update), on 1 and 2 threads. Run with
//! `cargo bench --bench seq`; the PyTorch and JAX peers are `benches/peers/seq_w.py`
//! (`python benches/peers/seq_w.py torch w7 1`), which builds the identical models.
//!
//! - W7 tiny-gpt: vocabulary 65, context 64, width 64, 4 heads, 2 pre-LayerNorm
//!   [`TransformerEncoderLayer`]s (fused qkv, causal mask, MLP 64-256-64 with exact GELU, no
//!   dropout), token + learned position embeddings, final LayerNorm and Linear head; batch 16 of
//!   random ids, cross-entropy over all 1024 next tokens, AdamW lr 3e-4, weight decay 0.01.
//! - W8 lstm-lm: vocabulary 65, embedding 32, one [`Lstm`] layer of 128, sequence 32, batch 32,
//!   Linear head on every step, cross-entropy, Adam lr 1e-3.
//! - W8 cell: the same model with the recurrence written from primitive ops (`matmul`, `chunk`,
//!   `sigmoid`, `tanh`) as a user would, as the JAX peer does.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tapegrad::nn::{Embedding, Lstm, RnnConfig, TransformerEncoderLayer, TransformerEncoderLayerConfig};
use tapegrad::optim::{AdamW, AdamWConfig};
use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

const V: usize = 65;

/// Random ids `[batch, steps + 1]` split into inputs (row-major `[batch, steps]`) and next-token
/// targets.
fn ids(batch: usize, steps: usize, rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let all: Vec<usize> = (0..batch * (steps + 1)).map(|_| rng.random_range(0..V)).collect();
    let row = |b: usize, lo: usize| all[b * (steps + 1) + lo..b * (steps + 1) + lo + steps].to_vec();
    let x = (0..batch).flat_map(|b| row(b, 0)).collect();
    let y = (0..batch).flat_map(|b| row(b, 1)).collect();
    (x, y)
}

fn w7(c: &mut Criterion) {
    let (t, d, heads, layers, batch) = (64, 64, 4, 2, 16);
    let mut rng = StdRng::seed_from_u64(0);
    let (x, y) = ids(batch, t, &mut rng);
    let tok = Embedding::<f32>::new(V, d, &mut rng);
    let pos = Embedding::<f32>::new(t, d, &mut rng);
    let cfg = TransformerEncoderLayerConfig {
        dim_feedforward: 4 * d,
        dropout: 0.0,
        activation: Activation::Gelu,
        norm_first: true,
        batch_first: true,
        ..Default::default()
    };
    let blocks: Vec<_> = (0..layers)
        .map(|_| TransformerEncoderLayer::<f32>::new(d, heads, cfg, &mut rng))
        .collect();
    let norm = LayerNorm::<f32>::new(d);
    let head = Linear::<f32>::new(d, V, &mut rng);
    let mut params = tok.parameters();
    params.extend(pos.parameters());
    for b in &blocks {
        params.extend(b.parameters());
    }
    params.extend(norm.parameters());
    params.extend(head.parameters());
    let mut opt = AdamW::new(
        params,
        AdamWConfig {
            lr: 3e-4,
            weight_decay: 0.01,
            ..Default::default()
        },
    );
    let positions: Vec<usize> = (0..t).collect();
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("W7");
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(20);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        let name = format!(
            "W7 tiny-gpt: 2 pre-LN blocks, width 64, ctx 64, batch 16, AdamW step, {threads} thread(s)"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                tape.reset();
                let mut h = tok.lookup(&tape, &x).reshape(&[batch, t, d]) + pos.lookup(&tape, &positions);
                for block in &blocks {
                    h = block.forward_masked(&tape, h, None, None, true);
                }
                let logits = head
                    .forward(&tape, norm.forward(&tape, h))
                    .reshape(&[batch * t, V]);
                let grads = loss::cross_entropy(logits, &y[..]).backward();
                tape.reset();
                opt.step(black_box(&grads));
            })
        });
    }
    group.finish();
}

/// W8's sizes: sequence, batch, embedding, hidden.
const T8: usize = 32;
const B8: usize = 32;
const E8: usize = 32;
const H8: usize = 128;

fn w8(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let (x, y) = ids(B8, T8, &mut rng);
    let emb = Embedding::<f32>::new(V, E8, &mut rng);
    let cfg = RnnConfig {
        batch_first: true,
        ..Default::default()
    };
    let lstm = Lstm::<f32>::new(E8, H8, cfg, &mut rng);
    let head = Linear::<f32>::new(H8, V, &mut rng);
    let mut params = emb.parameters();
    params.extend(lstm.parameters());
    params.extend(head.parameters());
    let mut opt = Adam::new(
        params,
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("W8");
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(20);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        let name = format!("W8 lstm-lm: nn::Lstm 32-128, seq 32, batch 32, Adam step, {threads} thread(s)");
        group.bench_function(name, |b| {
            b.iter(|| {
                tape.reset();
                let e = emb.lookup(&tape, &x).reshape(&[B8, T8, E8]);
                let out = lstm.forward(&tape, e); // [B, T, H]
                let logits = head.forward(&tape, out).reshape(&[B8 * T8, V]);
                let grads = loss::cross_entropy(logits, &y[..]).backward();
                tape.reset();
                opt.step(black_box(&grads));
            })
        });
    }
    group.finish();
}

/// W8's LSTM written by hand: `z = x_t W_x + b_x + h W_h + b_h`, gates i, f, g, o from `chunk`.
fn w8_cell(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let (x, y) = ids(B8, T8, &mut rng);
    let emb = Embedding::<f32>::new(V, E8, &mut rng);
    let k = 1.0 / (H8 as f32).sqrt();
    let mut uniform = |shape: &[usize]| Param::new(Tensor::<f32>::rand_uniform(shape, -k, k, &mut rng));
    let (wx, bx, wh, bh) = (
        uniform(&[E8, 4 * H8]),
        uniform(&[4 * H8]),
        uniform(&[H8, 4 * H8]),
        uniform(&[4 * H8]),
    );
    let head = Linear::<f32>::new(H8, V, &mut rng);
    let mut params = emb.parameters();
    params.extend([wx.clone(), bx.clone(), wh.clone(), bh.clone()]);
    params.extend(head.parameters());
    let mut opt = Adam::new(
        params,
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut group = c.benchmark_group("W8 cell");
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(20);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        let name = format!(
            "W8 lstm-lm cell from primitive ops: 32-128, seq 32, batch 32, Adam step, {threads} thread(s)"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                tape.reset();
                // [B, T, E] -> [T, B, E] -> [T·B, 4H]: every step's input projection at once.
                let e = emb.lookup(&tape, &x).reshape(&[B8, T8, E8]).transpose(0, 1);
                let xs = e.reshape(&[T8 * B8, E8]).matmul(&tape.param(&wx)) + tape.param(&bx);
                let (wh, bh) = (tape.param(&wh), tape.param(&bh));
                let mut h = tape.constant(Tensor::zeros(&[B8, H8]));
                let mut c = tape.constant(Tensor::zeros(&[B8, H8]));
                let mut hs = Vec::with_capacity(T8);
                for t in 0..T8 {
                    let z = xs.narrow(0, t * B8, B8) + h.matmul(&wh) + bh;
                    let g = z.chunk(4, 1);
                    c = g[1].sigmoid() * c + g[0].sigmoid() * g[2].tanh();
                    h = g[3].sigmoid() * c.tanh();
                    hs.push(h);
                }
                let out = Var::stack(&hs, 1); // [B, T, H]
                let logits = head.forward(&tape, out).reshape(&[B8 * T8, V]);
                let grads = loss::cross_entropy(logits, &y[..]).backward();
                tape.reset();
                opt.step(black_box(&grads));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, w7, w8, w8_cell);
criterion_main!(benches);
