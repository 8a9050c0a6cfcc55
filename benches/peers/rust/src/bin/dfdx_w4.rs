//! W4 in dfdx: A, B 1024x1024 f32, both traced; C = A @ B; loss = sum(C); backward (three GEMMs).
//! Timed like `shared/peers/torch_w.py w4`: three warm-ups, median of seven, GFLOP/s.
//! Threads: `RAYON_NUM_THREADS` (dfdx's CPU GEMM runs on rayon's pool).

use dfdx::prelude::*;
use std::time::Instant;

fn main() {
    let device: Cpu = Default::default();
    let a: Tensor<Rank2<1024, 1024>, f32, _> = device.sample_normal();
    let b: Tensor<Rank2<1024, 1024>, f32, _> = device.sample_normal();
    let step = || {
        let loss = a.leaky_trace().matmul(b.leaky_trace()).sum();
        let grads = loss.backward();
        std::hint::black_box((grads.get(&a), grads.get(&b)));
    };
    for _ in 0..3 {
        step();
    }
    let mut seconds = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        step();
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    println!("{:.2}", 6.0 * 1024f64.powi(3) / seconds[3] / 1e9);
}
