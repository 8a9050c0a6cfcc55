//! W4 timed the way `shared/peers/torch_w.py w4` times PyTorch: three warm-up runs, then the
//! median of seven, printed as GFLOP/s for 1 and 2 threads.
//!
//! criterion's W4 (`benches/core.rs`) reports means over a time budget; this prints the
//! peer's own statistic, so that runs alternated with the peer script compare like for like:
//! `cargo bench --bench w4_median` then `python torch_w.py w4 1` and `w4 2`. On a noisy VM,
//! compare many alternated pairs rather than one (BENCHMARKS.md shows how).

use std::hint::black_box;
use std::time::Instant;
use tapegrad::rand::{SeedableRng, rngs::StdRng};
use tapegrad::{Tape, Tensor};

const N: usize = 1024;

fn median_seconds(mut run: impl FnMut()) -> f64 {
    for _ in 0..3 {
        run();
    }
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[3]
}

fn main() {
    let mut rng = StdRng::seed_from_u64(4);
    let a = Tensor::<f32>::randn(&[N, N], &mut rng);
    let b = Tensor::<f32>::randn(&[N, N], &mut rng);
    for threads in [1, 2] {
        tapegrad::set_num_threads(threads);
        let seconds = median_seconds(|| {
            let tape = Tape::<f32>::new();
            let (va, vb) = (tape.var(a.clone()), tape.var(b.clone()));
            black_box(va.matmul(&vb).sum().backward());
        });
        println!(
            "W4 {threads} thread(s): {:.2} GFLOP/s",
            6.0 * (N as f64).powi(3) / seconds / 1e9
        );
    }
}
