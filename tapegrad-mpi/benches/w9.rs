//! W9 of WORKLOADS.md: W2's model and optimizer trained data-parallel, run under mpirun by
//! `benches/w9.sh` (which computes the scaling efficiency from the 1-rank and 2-rank figures).
//!
//! ```text
//! mpirun -np 2 W9 train [STEPS]   # W2 steps, batch 64 per rank: samples/s, all-reduce share
//! mpirun -np 2 W9 independent      # the same steps without the all-reduce: the ceiling
//! mpirun -np 2 W9 bandwidth       # the all-reduce alone, on W2's gradient size and others
//! ```
//!
//! Started without mpirun (as `cargo bench` does) it runs `train` on one rank. The environment
//! variables `W9_IN_PLACE_BYTES=N` and `W9_OVERLAP=1` set the averager's `in_place_bytes` and
//! `overlap`, and `W9_BATCH=N` another batch per rank (mpirun passes them on with `-x`).

use std::time::Instant;

use tapegrad::optim::{Adam, AdamConfig, Optimizer};
use tapegrad::prelude::*;
use tapegrad::rand::rngs::StdRng;
use tapegrad::rand::{RngExt, SeedableRng};
use tapegrad_mpi::{GradientAverager, World, root_println};

/// W9's batch per rank (`W9_BATCH` sets another, to see how a larger one scales).
const BATCH: usize = 64;
const WARM_UP: usize = 20;

fn main() {
    let world = World::init().expect("MPI starts");
    world.abort_on_panic();
    tapegrad::set_num_threads(1);
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("bandwidth") => bandwidth(&world),
        mode @ (Some("train" | "independent") | None) => {
            let steps = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
            train(&world, steps, mode != Some("independent"));
        }
        Some(other) => {
            root_println!(
                world,
                "w9: unknown mode {other:?}: train [STEPS], independent [STEPS] or bandwidth"
            );
            std::process::exit(2);
        }
    }
}

/// W2's step on every rank (its own N(0, 1) batch of 64, uniform labels), gradients averaged
/// (or, with `average` false, each rank training alone: what the machine gives two ranks
/// without any communication).
fn train(world: &World, steps: usize, average: bool) {
    let batch = std::env::var("W9_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BATCH);
    let mut rng = StdRng::seed_from_u64(world.rank() as u64);
    let x = Tensor::<f32>::randn(&[batch, 784], &mut rng);
    let labels: Vec<usize> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let model = Mlp::<f32>::new(&[784, 256, 128, 10], Activation::Relu, &mut rng);
    world
        .broadcast_module(&model)
        .expect("the same model on every rank");
    // W9_IN_PLACE_BYTES and W9_OVERLAP=1 try the averager's other settings.
    let setting = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    let mut averager = GradientAverager::new(world, &model).expect("the same model on every rank");
    if let Some(bytes) = setting("W9_IN_PLACE_BYTES") {
        averager = averager.in_place_bytes(bytes);
    }
    averager = averager.overlap(setting("W9_OVERLAP") == Some(1));
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut tape = Tape::new();
    let mut communication = 0.0;
    let mut averaging = 0.0;
    let mut phases = [0.0; 2]; // forward and backward; optimizer step
    let mut start = Instant::now();
    for step in 0..WARM_UP + steps {
        if step == WARM_UP {
            world.barrier();
            start = Instant::now();
            (communication, averaging, phases) = (0.0, 0.0, [0.0; 2]);
        }
        let t = Instant::now();
        tape.reset();
        let logits = model.forward(&tape, tape.constant(x.clone()));
        let mut grads = loss::cross_entropy(logits, &labels).backward();
        phases[0] += t.elapsed().as_secs_f64();
        if average && world.size() > 1 {
            averager.average(&mut grads);
            let timing = averager.last_timing();
            communication += timing.communication.as_secs_f64();
            averaging += timing.total.as_secs_f64();
        }
        let t = Instant::now();
        tape.reset();
        opt.step(&grads);
        drop(grads);
        phases[1] += t.elapsed().as_secs_f64();
    }
    world.barrier();
    let seconds = start.elapsed().as_secs_f64();
    let mut shares = [
        communication / seconds,
        averaging / seconds,
        phases[0] / seconds,
        phases[1] / seconds,
    ];
    world.all_reduce_sum_slice(&mut shares);
    let ranks = world.size() as f64;
    let samples_per_second = (steps * batch * world.size()) as f64 / seconds;
    root_println!(
        world,
        "w9 {}: ranks {} threads 1 batch {batch}/rank steps {steps}: {:.3} ms/step, {samples_per_second:.0} samples/s, all-reduce {:.1}% of the step (averaging with packing {:.1}%, forward and backward {:.1}%, optimizer {:.1}%)",
        if average { "train" } else { "independent" },
        world.size(),
        1e3 * seconds / steps as f64,
        100.0 * shares[0] / ranks,
        100.0 * shares[1] / ranks,
        100.0 * shares[2] / ranks,
        100.0 * shares[3] / ranks
    );
}

/// The in-place all-reduce alone: W2's gradient (235,146 f32 plus its 6 presence flags) and
/// other sizes, averaged over many calls; algorithm bandwidth = bytes / time, bus bandwidth =
/// 2(p-1)/p × that (the bytes each rank sends in a ring all-reduce, nccl-tests' convention).
fn bandwidth(world: &World) {
    let w2 = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 + 5;
    for numel in [1, 1024, 16 * 1024, w2, 1 << 20, 4 << 20] {
        // One parameter of `numel` values, reduced through the averager as training does.
        let param = tapegrad::Param::new(Tensor::<f32>::zeros(&[numel]));
        let mut grads = tapegrad::Gradients::default();
        grads.insert_param(&param, Tensor::ones(&[numel]));
        let mut averager = GradientAverager::new(world, &OneParam(param)).expect("same everywhere");
        let calls = if numel <= 16 * 1024 { 2000 } else { 100 };
        for _ in 0..10 {
            averager.average(&mut grads);
        }
        world.barrier();
        let start = Instant::now();
        let mut inside = 0.0;
        for _ in 0..calls {
            averager.average(&mut grads);
            inside += averager.last_timing().communication.as_secs_f64();
        }
        let per_call = start.elapsed().as_secs_f64() / calls as f64;
        let mut mpi_time = [inside / calls as f64];
        world.all_reduce_sum_slice(&mut mpi_time);
        let mpi_time = mpi_time[0] / world.size() as f64;
        let bytes = (numel + 1) as f64 * 4.0;
        let p = world.size() as f64;
        root_println!(
            world,
            "w9 bandwidth: ranks {} {:>9} bytes: {:8.1} µs per all-reduce ({:8.1} µs with packing), algorithm {:6.2} GB/s, bus {:6.2} GB/s",
            world.size(),
            bytes as usize,
            1e6 * mpi_time,
            1e6 * per_call,
            bytes / mpi_time / 1e9,
            2.0 * (p - 1.0) / p * bytes / mpi_time / 1e9
        );
    }
}

/// A module of one parameter.
struct OneParam(tapegrad::Param<f32>);

impl Module<f32> for OneParam {
    fn named_parameters(&self) -> Vec<(String, tapegrad::Param<f32>)> {
        vec![("weight".to_string(), self.0.clone())]
    }
    fn train(&mut self, _: bool) {}
    fn is_training(&self) -> bool {
        true
    }
}
