//! Data-parallel training over MPI: W2's MLP (784-256-128-10, ReLU, Adam 1e-3, batch 64 per
//! rank) trained on every rank's shard of the data, gradients averaged before each step.
//!
//! ```text
//! cargo build --release -p tapegrad-mpi --example ddp
//! mpirun -np 2 target/release/examples/ddp                     # synthetic digits-sized data
//! mpirun -np 2 target/release/examples/ddp --mnist data/mnist  # MNIST's IDX files (.gz or not)
//! mpirun -np 2 target/release/examples/ddp --quick             # seconds, as CI runs it
//! mpirun -np 2 target/release/examples/ddp --out DIR           # also write DIR/ddp.safetensors
//! ```
//!
//! Options: `--epochs N`, `--batch N` (per rank), `--threads N` (tapegrad's threads per rank,
//! default 1: one rank per core). Run as root, mpirun also needs `--allow-run-as-root`; with more
//! ranks than cores, `--oversubscribe`.
//!
//! Only rank 0 prints and writes the checkpoint; the loss and accuracy it prints are averaged
//! over all ranks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use tapegrad::data::{Dataset, idx};
use tapegrad::prelude::*;
use tapegrad::rand::rngs::StdRng;
use tapegrad::rand::{RngExt, SeedableRng};
use tapegrad::train::evaluate;
use tapegrad_mpi::{DistributedSampler, GradientAverager, World, root_println};

struct Options {
    mnist: Option<PathBuf>,
    quick: bool,
    out: Option<PathBuf>,
    epochs: Option<usize>,
    batch: usize,
    threads: usize,
}

const USAGE: &str = "usage: ddp [--mnist DIR] [--quick] [--out DIR] [--epochs N] [--batch N] [--threads N]";

fn parse() -> Result<Options, String> {
    let mut options = Options {
        mnist: None,
        quick: false,
        out: None,
        epochs: None,
        batch: 64,
        threads: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name} needs a positive number, got {v:?}"))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--mnist" => options.mnist = Some(PathBuf::from(value("--mnist")?)),
            "--out" => options.out = Some(PathBuf::from(value("--out")?)),
            "--epochs" => options.epochs = Some(number("--epochs", value("--epochs")?)?),
            "--batch" => options.batch = number("--batch", value("--batch")?)?,
            "--threads" => options.threads = number("--threads", value("--threads")?)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("ddp: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let world = match World::init() {
        Ok(world) => world,
        Err(e) => {
            eprintln!("ddp: {e}");
            return ExitCode::FAILURE;
        }
    };
    world.abort_on_panic();
    match run(&world, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every rank gets the same error; one line of it is enough.
            root_println!(world, "ddp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(world: &World, options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    tapegrad::set_num_threads(options.threads);
    let (train_set, test_set) = match &options.mnist {
        Some(dir) => {
            let find = |name: &str| {
                let plain = dir.join(name);
                let gz = dir.join(format!("{name}.gz"));
                if plain.is_file() || !gz.is_file() {
                    plain
                } else {
                    gz
                }
            };
            let load = |images: &str, labels: &str| idx::load_mnist::<f32>(find(images), find(labels));
            let train_set = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
            let test_set = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
            if options.quick {
                (head(&train_set, 6000), head(&test_set, 2000))
            } else {
                (train_set, test_set)
            }
        }
        None if options.quick => (synthetic(4096, 1), synthetic(1024, 2)),
        None => (synthetic(32768, 1), synthetic(4096, 2)),
    };
    let epochs = options.epochs.unwrap_or(if options.quick { 2 } else { 5 });
    root_println!(
        world,
        "{} ranks x {} thread(s), batch {} per rank ({} in all); {} training and {} test examples; {epochs} epochs",
        world.size(),
        options.threads,
        options.batch,
        options.batch * world.size(),
        train_set.len(),
        test_set.len()
    );

    // Each rank initialises with its own seed; the broadcast makes rank 0's weights everyone's.
    let mut rng = StdRng::seed_from_u64(1000 + world.rank() as u64);
    let pixels = train_set.features.shape()[1];
    let mut model = Mlp::<f32>::new(&[pixels, 256, 128, 10], Activation::Relu, &mut rng);
    world.broadcast_module(&model)?;
    let mut averager = GradientAverager::new(world, &model)?;
    let mut opt = Adam::new(
        model.parameters(),
        AdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
    );
    let mut sampler = DistributedSampler::for_world(train_set.len(), world)
        .seed(0)
        .drop_last(true);

    let mut tape = Tape::new();
    let mut accuracy = 0.0;
    for epoch in 0..epochs {
        sampler.set_epoch(epoch as u64);
        let started = Instant::now();
        let mut communication = 0.0;
        let mut totals = [0.0; 2]; // loss summed over batches, batches
        // Whole batches only, the same number on every rank.
        for indices in sampler.indices().chunks_exact(options.batch) {
            let batch = train_set.select(indices);
            tape.reset();
            let logits = model.forward(&tape, tape.constant(batch.features.clone()));
            let loss = loss::cross_entropy(logits, &batch.labels());
            totals[0] += f64::from(loss.item());
            totals[1] += 1.0;
            let mut grads = loss.backward();
            averager.average(&mut grads);
            communication += averager.last_timing().communication.as_secs_f64();
            tape.reset(); // the tape lets go of the parameters, so the update is in place
            opt.step(&grads);
        }
        let seconds = started.elapsed().as_secs_f64();
        world.all_reduce_sum_slice(&mut totals);
        let samples = totals[1] * options.batch as f64;
        let (test_loss, test_accuracy) = distributed_evaluate(world, &mut model, &test_set);
        accuracy = test_accuracy;
        root_println!(
            world,
            "epoch {}: train loss {:.4}, test loss {:.4}, test accuracy {:.1}%, {:.0} samples/s, all-reduce {:.0}% of the time",
            epoch + 1,
            totals[0] / totals[1],
            test_loss,
            100.0 * test_accuracy,
            samples / seconds,
            100.0 * communication / seconds
        );
    }
    if let Some(dir) = &options.out {
        if world.is_root() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let path = dir.join("ddp.safetensors");
        world.save_on_root(&path, &model)?;
        root_println!(world, "wrote {}", path.display());
    }
    if options.mnist.is_none() && accuracy < 0.9 {
        return Err(format!(
            "expected at least 90% test accuracy on the synthetic data, got {:.1}%",
            100.0 * accuracy
        )
        .into());
    }
    Ok(())
}

/// The test loss and accuracy over the whole test set: each rank evaluates every `size`-th
/// example (no padding, so none counts twice) and the sums are all-reduced.
fn distributed_evaluate(world: &World, model: &mut Mlp<f32>, test_set: &Dataset<f32>) -> (f64, f64) {
    let mine: Vec<usize> = (world.rank()..test_set.len()).step_by(world.size()).collect();
    let shard = test_set.subset(&mine);
    let mut sums = [0.0; 3];
    if !mine.is_empty() {
        let e = evaluate(model, &shard, 1000, |logits, batch| {
            loss::cross_entropy(logits, &batch.labels())
        });
        let n = e.examples as f64;
        sums = [e.loss * n, e.accuracy.unwrap_or(0.0) * n, n];
    }
    world.all_reduce_sum_slice(&mut sums);
    (sums[0] / sums[2], sums[1] / sums[2])
}

/// The first `n` examples.
fn head(data: &Dataset<f32>, n: usize) -> Dataset<f32> {
    data.subset(&(0..data.len().min(n)).collect::<Vec<_>>())
}

/// `n` examples of 784 features in 10 classes: class `c`'s examples are N(0, 1) noise around a
/// fixed random centre of norm 4.2 (0.15 per feature): learnable, of MNIST's sizes, the
/// same on every rank.
fn synthetic(n: usize, seed: u64) -> Dataset<f32> {
    let mut centre_rng = StdRng::seed_from_u64(0);
    let centres: Vec<f32> = (0..784 * 10)
        .map(|_| if centre_rng.random_bool(0.5) { 0.15 } else { -0.15 })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let mut features = Tensor::<f32>::randn(&[n, 784], &mut rng);
    for (x, &c) in features.as_mut_slice().chunks_mut(784).zip(&labels) {
        for (x, m) in x.iter_mut().zip(&centres[c * 784..(c + 1) * 784]) {
            *x += m;
        }
    }
    let labels = labels.into_iter().map(|c| c as f32).collect();
    Dataset::new(features, Tensor::from_vec(labels, &[n, 1]))
}
