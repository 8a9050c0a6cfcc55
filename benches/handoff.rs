//! What handing half of a loop to a second thread costs on this machine (issue 20, "threads that
//! pay"): `rayon::join` called from a thread outside rayon's pool (as every tapegrad kernel is
//! called today, from the user's thread), the same join from inside the pool, and one dedicated
//! worker that spins on an atomic while the caller does the other half. Plain timing, no
//! criterion: `cargo bench --bench handoff` prints microseconds per two-way split for three sizes
//! of work per half (0, 1,000 and 10,000 square roots), then W2's step (the model and loop of
//! `benches/nn.rs`) on one and two threads, run from the main thread and from inside rayon's pool.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tapegrad::prelude::*;
use tapegrad::rand::{RngExt, SeedableRng, rngs::StdRng};

const REPS: usize = 20_000;

fn work(n: usize) -> f64 {
    (0..n).map(|i| (i as f64).sqrt()).sum()
}

fn micros_per_rep(run: impl FnOnce()) -> f64 {
    let start = Instant::now();
    run();
    start.elapsed().as_secs_f64() / REPS as f64 * 1e6
}

/// The caller publishes round `r` in `GO`, does its half, and waits for the worker to echo `r`
/// in `DONE`; the worker spins between rounds and never sleeps. `usize::MAX` stops it.
fn spinning_worker(n: usize) -> f64 {
    static GO: AtomicUsize = AtomicUsize::new(0);
    static DONE: AtomicUsize = AtomicUsize::new(0);
    GO.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    let worker = std::thread::spawn(move || {
        let mut seen = 0;
        loop {
            match GO.load(Ordering::Acquire) {
                usize::MAX => break,
                round if round != seen => {
                    seen = round;
                    black_box(work(n));
                    DONE.store(round, Ordering::Release);
                }
                _ => std::hint::spin_loop(),
            }
        }
    });
    let micros = micros_per_rep(|| {
        for round in 1..=REPS {
            GO.store(round, Ordering::Release);
            black_box(work(n));
            while DONE.load(Ordering::Acquire) != round {
                std::hint::spin_loop();
            }
        }
    });
    GO.store(usize::MAX, Ordering::SeqCst);
    worker.join().expect("the spinning worker does not panic");
    micros
}

/// Milliseconds per W2 step (MLP 784-256-128-10, batch 64, Adam) on `threads` threads: the
/// best of five runs of 200 steps after 50 warm-up steps. Everything is built here, so that the
/// whole loop can be started on a thread of rayon's pool.
fn w2_step_ms(threads: usize) -> f64 {
    let mut rng = StdRng::seed_from_u64(0);
    let x = Tensor::<f32>::randn(&[64, 784], &mut rng);
    let labels: Vec<usize> = (0..64).map(|_| rng.random_range(0..10)).collect();
    let model = Mlp::new(&[784, 256, 128, 10], Activation::Relu, &mut rng);
    let config = AdamConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let mut opt = Adam::new(model.parameters(), config);
    let mut tape = Tape::new();
    tapegrad::set_num_threads(threads);
    let mut step = || {
        tape.reset();
        let logits = model.forward(&tape, tape.constant(x.clone()));
        let grads = loss::cross_entropy(logits, &labels).backward();
        tape.reset();
        opt.step(black_box(&grads));
    };
    (0..50).for_each(|_| step());
    (0..5)
        .map(|_| {
            let start = Instant::now();
            (0..200).for_each(|_| step());
            start.elapsed().as_secs_f64() / 200.0 * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!(
        "µs per two-way split, {} threads in rayon's pool",
        rayon::current_num_threads()
    );
    for n in [0, 1_000, 10_000] {
        let serial = micros_per_rep(|| {
            for _ in 0..REPS {
                black_box(work(n));
                black_box(work(n));
            }
        });
        let outside = micros_per_rep(|| {
            for _ in 0..REPS {
                black_box(rayon::join(|| work(n), || work(n)));
            }
        });
        let inside = micros_per_rep(|| {
            rayon::scope(|_| {
                for _ in 0..REPS {
                    black_box(rayon::join(|| work(n), || work(n)));
                }
            })
        });
        let spinning = spinning_worker(n);
        println!(
            "work {n:>6} per half: both halves on one thread {serial:7.2}, rayon::join from outside the \
             pool {outside:7.2}, from inside it {inside:7.2}, a spinning worker {spinning:7.2}"
        );
    }
    for round in 1..=2 {
        let (main_1, main_2) = (w2_step_ms(1), w2_step_ms(2));
        let (pool_1, pool_2) = rayon::scope(|_| (w2_step_ms(1), w2_step_ms(2)));
        println!(
            "W2 round {round}, ms per step: from the main thread {main_1:.3} (1 thread), \
             {main_2:.3} (2); from inside rayon's pool {pool_1:.3} (1), {pool_2:.3} (2)"
        );
    }
}
