//! Data-parallel training for [tapegrad] over MPI, the way PyTorch's `DistributedDataParallel`
//! and Horovod do it: every rank (process) holds the whole model, trains on its own shard of
//! the data, and before each optimizer step the gradients are averaged across ranks with an
//! all-reduce, so that all ranks take the same step and keep the same parameters.
//!
//! - [`World`]: MPI's environment (`mpirun`, `srun`): [`rank`](World::rank),
//!   [`size`](World::size), [`broadcast_module`](World::broadcast_module) (rank 0's parameters
//!   and buffers to every rank, after checking that all ranks built the same model),
//!   metrics averaged over ranks ([`all_reduce_mean`](World::all_reduce_mean)),
//!   [`barrier`](World::barrier), printing and checkpoints from rank 0 only
//!   ([`root_println!`], [`save_on_root`](World::save_on_root)).
//! - [`GradientAverager`]: the gradient all-reduce, in large flat buckets, `MPI_IN_PLACE`, f32
//!   and f64, optionally overlapped.
//! - [`DistributedSampler`]: each rank's shard of a data set, reshuffled each epoch.
//!
//! The bindings are rsmpi's (the `mpi` crate), over the system's MPI library: on Debian or
//! Ubuntu `apt-get install libopenmpi-dev openmpi-bin libclang-dev`.
//!
//! A training step, on every rank:
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::data::Dataset;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//! use tapegrad_mpi::{DistributedSampler, GradientAverager, World};
//!
//! let world = World::init()?;
//! world.abort_on_panic(); // a panic on one rank ends the job instead of hanging it
//! let data = tapegrad::data::linear::<f32, _>(256, 0.1, &mut StdRng::seed_from_u64(1));
//! let model = Linear::<f32>::new(1, 1, &mut StdRng::seed_from_u64(world.rank() as u64));
//! world.broadcast_module(&model)?; // everyone starts from rank 0's weights
//! let mut averager = GradientAverager::new(&world, &model)?;
//! let mut opt = Sgd::new(model.parameters(), SgdConfig { lr: 0.1, ..Default::default() });
//! let mut sampler = DistributedSampler::for_world(data.len(), &world).seed(0);
//! let mut tape = Tape::new();
//! for epoch in 0..20 {
//!     sampler.set_epoch(epoch);
//!     let mut loss_sum = 0.0;
//!     let shard = sampler.indices();
//!     for indices in shard.chunks(32) {
//!         let batch = data.select(indices);
//!         tape.reset();
//!         let pred = model.forward(&tape, tape.constant(batch.features.clone()));
//!         let loss = loss::mse(pred, tape.constant(batch.targets.clone()));
//!         loss_sum += f64::from(loss.item());
//!         let mut grads = loss.backward();
//!         averager.average(&mut grads); // the mean over all ranks' batches
//!         tape.reset();
//!         opt.step(&grads);
//!     }
//!     let mean_loss = world.all_reduce_mean(loss_sum / shard.len().div_ceil(32) as f64);
//!     tapegrad_mpi::root_println!(world, "epoch {epoch}: loss {mean_loss:.4}");
//! }
//! let w = model.parameters()[0].value().item();
//! assert!((w - 2.0).abs() < 0.1, "{w}");
//! # Ok::<(), tapegrad_mpi::Error>(())
//! ```
//!
//! Run it with `mpirun -np 4 target/release/examples/ddp` (see the repository's README, section
//! "Training on several machines", for hostfiles and threads per rank).

mod average;
mod error;
mod model;
mod sampler;
mod world;

pub use average::{AverageTiming, GradientAverager};
pub use error::Error;
pub use sampler::DistributedSampler;
pub use world::World;
