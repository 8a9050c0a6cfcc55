//! tapegrad-mpi's checks on a real two-rank MPI job.
//!
//! `cargo test -p tapegrad-mpi` runs this binary without MPI's environment; it then starts
//! itself again under `mpirun --oversubscribe -np 2` (with `--allow-run-as-root` as root, as in
//! CI) and fails if the job does. Under mpirun, both ranks run every check in order; a failed
//! check panics, and the panic aborts the whole job (`World::abort_on_panic`), so a failure is
//! never a hang. Without mpirun on the machine the test fails with a message: it is never
//! skipped.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use tapegrad::data::Dataset;
use tapegrad::nn::{Activation, BatchNorm1d, Linear, Mlp, Module, Sequential};
use tapegrad::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad::rand::SeedableRng;
use tapegrad::rand::rngs::StdRng;
use tapegrad::{Float, Gradients, Tape, Tensor, loss};
use tapegrad_mpi::{DistributedSampler, Error, GradientAverager, World};

const RANKS: usize = 2;
/// The directory the launcher creates for files the ranks share (checkpoints).
const DIR_VAR: &str = "TAPEGRAD_MPI_TEST_DIR";

fn main() -> ExitCode {
    let under_mpi = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if under_mpi { run_checks() } else { launch() }
}

/// Starts this binary on two ranks and reports the job's outcome.
fn launch() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("two_ranks: cannot find this test's own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("two_ranks: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut mpirun = Command::new("mpirun");
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        mpirun.arg("--allow-run-as-root");
    }
    // A deadlock would be a failure too: the job is killed after five minutes.
    mpirun.args(["--oversubscribe", "--timeout", "300", "-np", &RANKS.to_string()]);
    mpirun.arg(exe).env(DIR_VAR, dir.path());
    println!("two_ranks: {mpirun:?}");
    match mpirun.status() {
        Ok(status) if status.success() => {
            println!("two_ranks: every check passed on {RANKS} ranks");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("two_ranks: the MPI job failed ({status}); see the rank's message above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!(
                "two_ranks: cannot run mpirun ({e}): these tests need MPI (on Debian or Ubuntu: \
                 apt-get install openmpi-bin libopenmpi-dev libclang-dev)"
            );
            ExitCode::FAILURE
        }
    }
}

/// A check every rank runs.
type Check = fn(&World);

fn run_checks() -> ExitCode {
    let world = World::init().expect("the first World::init of the process");
    world.abort_on_panic();
    assert_eq!(world.size(), RANKS, "run with -np {RANKS}");
    let checks: Vec<(&str, Check)> = vec![
        ("a second World::init is an error", second_init_is_an_error),
        ("metrics are reduced over ranks", metrics_are_reduced),
        (
            "the broadcast makes ranks start equal",
            broadcast_makes_ranks_equal,
        ),
        (
            "2 ranks x batch B equal 1 rank x batch 2B (f64)",
            data_parallel_equals_large_batch::<f64>,
        ),
        (
            "2 ranks x batch B equal 1 rank x batch 2B (f32)",
            data_parallel_equals_large_batch::<f32>,
        ),
        ("a parameter only one rank used", parameter_used_on_one_rank),
        (
            "the sampler covers the data set once per epoch",
            sampler_covers_the_data_set,
        ),
        (
            "models that differ are an error on every rank",
            mismatched_models_are_errors,
        ),
        ("checkpoints are written by rank 0 only", checkpoints_from_root),
    ];
    for (name, check) in checks {
        check(&world);
        world.barrier();
        tapegrad_mpi::root_println!(world, "two_ranks: ok: {name}");
    }
    ExitCode::SUCCESS
}

fn second_init_is_an_error(_: &World) {
    let err = World::init().unwrap_err();
    assert!(matches!(err, Error::AlreadyInitialized));
    assert!(err.to_string().contains("initialised already"), "{err}");
}

fn metrics_are_reduced(world: &World) {
    let rank = world.rank() as f64;
    assert_eq!(world.all_reduce_mean(rank), 0.5);
    assert_eq!(world.all_reduce_sum(rank + 1.0), 3.0);
    let mut totals = [rank, 10.0 * rank, 1.0];
    world.all_reduce_sum_slice(&mut totals);
    assert_eq!(totals, [1.0, 10.0, 2.0]);
    let mut values = [rank + 7.0; 3];
    world.broadcast(&mut values);
    assert_eq!(values, [7.0; 3]);
    assert_eq!(world.on_root(|| 5), world.is_root().then_some(5));
}

/// Every value of `module` (parameters, then buffers), flat.
fn flat_values<T: Float, M: Module<T>>(module: &M) -> Vec<T> {
    let params = module
        .named_parameters()
        .into_iter()
        .chain(module.named_buffers());
    params.flat_map(|(_, p)| p.value().to_vec()).collect()
}

/// Panics unless every rank's `values` equal rank 0's exactly.
fn assert_same_on_every_rank(world: &World, values: &[f64], what: &str) {
    let mut root = values.to_vec();
    world.broadcast(&mut root);
    assert!(
        root == values,
        "rank {}: {what} differ from rank 0's",
        world.rank()
    );
}

fn broadcast_makes_ranks_equal(world: &World) {
    // Each rank its own seed, and its own buffer values: they differ before...
    let mut rng = StdRng::seed_from_u64(100 + world.rank() as u64);
    let model = Sequential::<f64>::new()
        .with(Linear::new(3, 5, &mut rng))
        .with(BatchNorm1d::new(5))
        .with(Linear::new(5, 2, &mut rng));
    let buffer = &model.named_buffers()[0].1;
    buffer.set_value(Tensor::full(&buffer.shape(), world.rank() as f64 + 0.5));
    let before = flat_values(&model);
    let mut root = before.clone();
    world.broadcast(&mut root);
    if !world.is_root() {
        assert!(
            root != before,
            "the ranks' models should differ before the broadcast"
        );
    }
    // ... and are rank 0's after.
    world.broadcast_module(&model).unwrap();
    let after = flat_values(&model);
    assert_eq!(
        after,
        root,
        "rank {}: the model is not rank 0's after broadcast_module",
        world.rank()
    );
    assert_eq!(model.named_buffers()[0].1.value().to_vec(), vec![0.5; 5]);
}

/// A regression data set of `n` rows: 4 inputs, 2 targets.
fn regression<T: Float>(n: usize) -> Dataset<T> {
    let mut rng = StdRng::seed_from_u64(7);
    let x = Tensor::<T>::randn(&[n, 4], &mut rng);
    let w = Tensor::<T>::randn(&[4, 2], &mut rng);
    let y = x.matmul(&w);
    Dataset::new(x, y)
}

/// How the averager is set up: bucket bytes, in-place bytes, overlap.
type Setup = (usize, usize, bool);
const DEFAULTS: Setup = (25 << 20, 256 << 10, false);

/// Trains a 4-8-2 tanh MLP for `steps` steps. With `averager`, this rank's model is trained on
/// its half of each step's rows and the gradients are averaged; without, on all of them.
/// Returns the final parameters.
fn train<T: Float + mpi::traits::Equivalence>(
    world: &World,
    data: &Dataset<T>,
    batch: usize,
    steps: usize,
    averager: Option<Setup>,
) -> Vec<T> {
    let seed = if averager.is_some() {
        world.rank() as u64
    } else {
        0
    };
    let model = Mlp::<T>::new(&[4, 8, 2], Activation::Tanh, &mut StdRng::seed_from_u64(seed));
    // Adam in f64, SGD with momentum in f32: SGD's step is proportional to the gradient, so a
    // wrong scale (a sum for a mean) shows even at f32's tolerance; Adam's is nearly invariant
    // to the scale and needs f64's to show it.
    let mut opt: Box<dyn Optimizer<T>> = if T::NAME == "f64" {
        Box::new(Adam::new(
            model.parameters(),
            AdamConfig {
                lr: 1e-2,
                ..Default::default()
            },
        ))
    } else {
        let config = SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            ..Default::default()
        };
        Box::new(Sgd::new(model.parameters(), config))
    };
    let mut sync = averager.map(|(bucket_bytes, in_place_bytes, overlap)| {
        world.broadcast_module(&model).unwrap();
        GradientAverager::new(world, &model)
            .unwrap()
            .bucket_bytes(bucket_bytes)
            .in_place_bytes(in_place_bytes)
            .overlap(overlap)
    });
    if let (Some(sync), Some(setup)) = (&sync, averager) {
        check_plan(sync, setup);
    }
    for step in 0..steps {
        let global: Vec<usize> = (step * RANKS * batch..(step + 1) * RANKS * batch).collect();
        let rows = match &sync {
            Some(_) => global[world.rank() * batch..(world.rank() + 1) * batch].to_vec(),
            None => global,
        };
        let b = data.select(&rows);
        let tape = Tape::new();
        let pred = model.forward(&tape, tape.constant(b.features.clone()));
        let mut grads: Gradients<T> = loss::mse(pred, tape.constant(b.targets.clone())).backward();
        if let Some(sync) = &mut sync {
            sync.average(&mut grads);
        }
        drop(tape);
        opt.step(&grads);
    }
    flat_values(&model)
}

/// One bucket when everything fits in it, several when buckets are small; none when every
/// gradient is reduced in place.
fn check_plan<T: Float + mpi::traits::Equivalence>(
    sync: &GradientAverager<'_, T>,
    (bucket, in_place, _): Setup,
) {
    let size = std::mem::size_of::<T>();
    let largest = 4 * 8 * size; // the first weight
    let total = (4 * 8 + 8 + 8 * 2 + 2) * size;
    let (buckets, alone) = (sync.bucket_count(), sync.in_place_count());
    if in_place == 0 {
        assert_eq!((buckets, alone), (0, 4));
    } else if in_place > largest && bucket >= total {
        assert_eq!((buckets, alone), (1, 0));
    } else if in_place > largest {
        assert!(buckets > 1 && alone == 0, "{buckets} buckets");
    }
}

fn data_parallel_equals_large_batch<T: Float + mpi::traits::Equivalence>(world: &World) {
    let (batch, steps) = (16, 12);
    let data = regression::<T>(RANKS * batch * steps);
    let reference = train(world, &data, batch, steps, None);
    let parallel = train(world, &data, batch, steps, Some(DEFAULTS));
    // The two differ only in the order of the additions of the batch mean (one mean of 2B rows
    // against the mean of two means of B rows): a unit or two in the last place of a gradient,
    // carried along by 12 steps without growth. Seen: 1.1e-16 in f64 and 1.2e-7 in f32 (one
    // ulp near 1); allowed: about 50 and 8 ulps, 1e-14 and 1e-6. A wrong scale (a sum for a
    // mean) is off by 1e-9 under Adam in f64 and by 0.5 under SGD in f32.
    let tolerance = if T::NAME == "f64" { 1e-14 } else { 1e-6 };
    let largest = parallel
        .iter()
        .zip(&reference)
        .map(|(p, r)| (p.to_f64() - r.to_f64()).abs())
        .fold(0.0, f64::max);
    tapegrad_mpi::root_println!(
        world,
        "two_ranks: {}: largest difference {largest:.1e} (tolerance {tolerance:.0e})",
        T::NAME
    );
    for (k, (p, r)) in parallel.iter().zip(&reference).enumerate() {
        let (p, r) = (p.to_f64(), r.to_f64());
        assert!(
            (p - r).abs() <= tolerance * r.abs().max(1.0),
            "rank {}, {}: parameter value {k} is {p} on 2 ranks of {batch} but {r} on 1 rank of {}",
            world.rank(),
            T::NAME,
            RANKS * batch
        );
    }
    assert_ne!(
        parallel,
        train(world, &data, batch, 0, None),
        "training should move the parameters"
    );
    let as_f64: Vec<f64> = parallel.iter().map(|x| x.to_f64()).collect();
    assert_same_on_every_rank(world, &as_f64, "the trained parameters");
    // Small buckets (several all-reduces), gradients reduced in place and overlap reduce the
    // same sums: with two ranks each element is one addition, so the results are identical,
    // not merely close.
    let setups = [
        (64, usize::MAX, false),
        (64, usize::MAX, true),
        (25 << 20, 0, false),
        (25 << 20, 0, true),
        (64, 64, true),
    ];
    for setup in setups {
        let other = train(world, &data, batch, steps, Some(setup));
        assert!(
            other == parallel,
            "averager {setup:?}: other parameters than with {DEFAULTS:?}"
        );
    }
}

fn parameter_used_on_one_rank(world: &World) {
    let mut rng = StdRng::seed_from_u64(3);
    let model: (Linear<f64>, Linear<f64>, Linear<f64>) = (
        Linear::new(2, 2, &mut rng),
        Linear::new(2, 1, &mut rng),
        Linear::new(1, 1, &mut rng),
    );
    let [a, b, c] = [0, 1, 2].map(|k| model.named_parameters()[2 * k].1.clone());
    // Rank r's loss: rank 0's goes through the second layer, rank 1's does not, nobody's
    // through the third.
    let local = |rank: usize| {
        let tape = Tape::new();
        let x = tape.constant(Tensor::from_vec(vec![1.0 + rank as f64, -2.0], &[1, 2]));
        let h = model.0.forward(&tape, x);
        let out = if rank == 0 {
            model.1.forward(&tape, h).sum()
        } else {
            h.square().sum()
        };
        out.backward()
    };
    let (g0, g1) = (local(0), local(1));
    let mean = |p| -> Vec<f64> {
        let get = |g: &Gradients<f64>| g.param(p).map(|t| t.to_vec());
        let (x, y) = (get(&g0), get(&g1));
        let n = x.as_ref().or(y.as_ref()).unwrap().len();
        let (x, y) = (x.unwrap_or(vec![0.0; n]), y.unwrap_or(vec![0.0; n]));
        x.iter().zip(&y).map(|(x, y)| (x + y) / 2.0).collect()
    };
    // Packed, and reduced in place (where a missing gradient is first made zeros).
    for in_place_bytes in [usize::MAX, 0] {
        for overlap in [false, true] {
            let mut sync = GradientAverager::new(world, &model)
                .unwrap()
                .in_place_bytes(in_place_bytes)
                .overlap(overlap);
            let mut grads = local(world.rank());
            assert!(grads.param(&c).is_none());
            sync.average(&mut grads);
            for (name, p) in [("first", &a), ("second", &b)] {
                assert_eq!(
                    grads.param(p).map(|t| t.to_vec()),
                    Some(mean(p)),
                    "rank {}, in place from {in_place_bytes} bytes, overlap {overlap}: the {name} layer's weight",
                    world.rank()
                );
            }
            assert!(
                grads.param(&c).is_none(),
                "a parameter no rank used must keep no gradient"
            );
        }
    }
}

fn sampler_covers_the_data_set(world: &World) {
    for len in [1000, 1001, 1] {
        for drop_last in [false, true] {
            let mut sampler = DistributedSampler::for_world(len, world)
                .seed(11)
                .drop_last(drop_last);
            let mut previous = Vec::new();
            for epoch in 0..3 {
                sampler.set_epoch(epoch);
                let shard = sampler.indices();
                assert_eq!(shard.len(), sampler.num_samples());
                let mut counts = vec![0.0; len];
                for &i in &shard {
                    counts[i] += 1.0;
                }
                world.all_reduce_sum_slice(&mut counts);
                let seen: f64 = counts.iter().sum();
                assert_eq!(seen as usize, sampler.total_size());
                if len % RANKS == 0 {
                    assert!(counts.iter().all(|&c| c == 1.0), "len {len}: {counts:?}");
                } else if drop_last {
                    assert!(counts.iter().all(|&c| c <= 1.0));
                    assert_eq!(seen as usize, len - len % RANKS);
                } else {
                    assert!(counts.iter().all(|&c| c >= 1.0));
                    assert_eq!(seen as usize, len + RANKS - len % RANKS);
                }
                if len > 1 {
                    assert_ne!(shard, previous, "each epoch reshuffles");
                }
                previous = shard;
            }
        }
    }
}

fn mismatched_models_are_errors(world: &World) {
    let mut rng = StdRng::seed_from_u64(world.rank() as u64);
    // Rank 1's hidden layer is wider.
    let hidden = 5 + world.rank();
    let model = Mlp::<f64>::new(&[3, hidden, 2], Activation::Relu, &mut rng);
    let before = flat_values(&model);
    let err = world.broadcast_module(&model).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ModelMismatch { rank: 1, .. }), "{msg}");
    for part in [
        "broadcast_module",
        "rank 1",
        "layers.0.weight",
        "[6, 3]",
        "[5, 3]",
    ] {
        assert!(
            msg.contains(part),
            "rank {}: {part:?} missing from: {msg}",
            world.rank()
        );
    }
    assert_eq!(
        flat_values(&model),
        before,
        "nothing is copied when the models differ"
    );
    let err = GradientAverager::new(world, &model).unwrap_err();
    assert!(err.to_string().contains("GradientAverager::new"), "{err}");

    // Rank 1 has one layer more.
    let sizes: &[usize] = if world.is_root() {
        &[3, 4, 2]
    } else {
        &[3, 4, 2, 2]
    };
    let model = Mlp::<f64>::new(sizes, Activation::Relu, &mut rng);
    let msg = world.broadcast_module(&model).unwrap_err().to_string();
    assert!(
        msg.contains("4 entries here but 6 on rank 0") || msg.contains("layers.2.weight"),
        "{msg}"
    );
    assert!(msg.contains("layers.2.weight"), "{msg}");
    // The ranks are still in step after the errors.
    assert_eq!(world.all_reduce_sum(1.0), RANKS as f64);
}

fn checkpoints_from_root(world: &World) {
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).expect("the launcher sets the shared directory"));
    let path = dir.join("model.safetensors");
    let model = Mlp::<f32>::new(&[2, 3, 1], Activation::Relu, &mut StdRng::seed_from_u64(9));
    world.save_on_root(&path, &model).unwrap();
    // Complete for every rank once save_on_root returns.
    let copy = Mlp::<f32>::new(&[2, 3, 1], Activation::Relu, &mut StdRng::seed_from_u64(10));
    tapegrad::io::load(&path, &copy).unwrap();
    assert_eq!(flat_values(&copy), flat_values(&model));

    let err = world
        .save_on_root(dir.join("no such directory").join("m.safetensors"), &model)
        .unwrap_err();
    assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
    assert!(err.to_string().contains("rank 0 could not write"), "{err}");
    if world.is_root() {
        assert!(std::error::Error::source(&err).is_some());
    }
}
