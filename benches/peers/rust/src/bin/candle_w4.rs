//! W4 in candle: A, B 1024x1024 f32 variables; C = A @ B; loss = sum(C); backward (three GEMMs).
//! Timed like `shared/peers/torch_w.py w4`: three warm-ups, median of seven, GFLOP/s.
//! Threads: `RAYON_NUM_THREADS` (candle sizes its GEMM split from it).

use candle_core::{Device, Tensor, Var};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let device = Device::Cpu;
    let a = Var::from_tensor(&Tensor::randn(0f32, 1f32, (1024, 1024), &device)?)?;
    let b = Var::from_tensor(&Tensor::randn(0f32, 1f32, (1024, 1024), &device)?)?;
    let step = || -> candle_core::Result<()> {
        let loss = a.as_tensor().matmul(b.as_tensor())?.sum_all()?;
        let grads = loss.backward()?;
        assert!(grads.get(a.as_tensor()).is_some() && grads.get(b.as_tensor()).is_some());
        Ok(())
    };
    for _ in 0..3 {
        step()?;
    }
    let mut seconds = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        step()?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    println!("{:.2}", 6.0 * 1024f64.powi(3) / seconds[3] / 1e9);
    Ok(())
}
