//! The MPI job this process belongs to: rank, size, and the collectives a training script needs.

use std::path::Path;
use std::sync::Once;

use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use tapegrad::Float;
use tapegrad::nn::Module;

use crate::Error;

/// This process's place in an MPI job (`mpirun -np N`, `srun`): its rank among the size of the
/// job, and the collective operations of data-parallel training. There is one `World` per
/// process, created at the start of `main`; dropping it shuts MPI down (`MPI_Finalize`), after
/// which MPI cannot start again.
///
/// Only the thread that created the `World` may call MPI (MPI's "funneled" level); tapegrad's
/// own worker threads (matrix products) never do, so `set_num_threads` stays free to use.
///
/// Started without `mpirun`, a program is a job of one rank (MPI's singleton start), so the same
/// binary runs on a laptop and on a cluster.
///
/// ```
/// let world = tapegrad_mpi::World::init()?;
/// assert!(world.rank() < world.size());
/// let mean = world.all_reduce_mean(world.rank() as f64);
/// assert_eq!(mean, (world.size() - 1) as f64 / 2.0);
/// # Ok::<(), tapegrad_mpi::Error>(())
/// ```
pub struct World {
    comm: SimpleCommunicator,
    rank: usize,
    size: usize,
    // Last, so that the communicator handle is gone before MPI_Finalize runs.
    _universe: Universe,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl World {
    /// Initialises MPI from the environment `mpirun` or `srun` set up. Every operation of this
    /// crate is a method of the `World` this returns (or takes it), so none can run before MPI
    /// is initialised or after it is shut down.
    ///
    /// # Errors
    /// [`Error::AlreadyInitialized`] if MPI was started already in this process (a second
    /// `World`, or one after the first was dropped).
    pub fn init() -> Result<World, Error> {
        let (universe, _provided) =
            mpi::initialize_with_threading(Threading::Funneled).ok_or(Error::AlreadyInitialized)?;
        let comm = universe.world();
        let rank = usize::try_from(comm.rank()).expect("MPI ranks are not negative");
        let size = usize::try_from(comm.size()).expect("MPI sizes are not negative");
        Ok(World {
            comm,
            rank,
            size,
            _universe: universe,
        })
    }

    /// This process's rank, `0..size()`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// How many processes the job has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `true` on rank 0: the rank that prints progress and writes checkpoints.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Waits until every rank has reached this call.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Makes a panic on any rank end the whole job (`MPI_Abort`) after its message is printed,
    /// instead of leaving the other ranks waiting forever in their next collective operation.
    /// Call it once, early in `main`; later calls do nothing. A panic that would have been
    /// caught (`std::panic::catch_unwind`, a test harness) aborts the job too, so tests that
    /// expect panics should not call it.
    pub fn abort_on_panic(&self) {
        static HOOK: Once = Once::new();
        let rank = self.rank;
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                eprintln!("tapegrad-mpi: rank {rank} panicked: aborting the MPI job");
                // SAFETY: MPI_Abort takes a communicator handle and an error code, and does
                // not return; MPI is initialised while a World exists, which this hook's
                // installation required.
                unsafe {
                    mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 1);
                }
            }));
        });
    }

    /// Ends the whole job at once with `code` (`MPI_Abort`), from any rank.
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }

    /// The sum of `value` over all ranks, returned on every rank.
    pub fn all_reduce_sum(&self, value: f64) -> f64 {
        let mut values = [value];
        self.all_reduce_sum_slice(&mut values);
        values[0]
    }

    /// The mean of `value` over all ranks (a metric such as the loss), returned on every rank.
    pub fn all_reduce_mean(&self, value: f64) -> f64 {
        self.all_reduce_sum(value) / self.size as f64
    }

    /// Replaces every number of `values` by its sum over all ranks, in one call: several metrics
    /// at once (the loss summed over examples, the number correct, the number seen), so that an
    /// accuracy is the total correct over the total seen rather than a mean of ratios.
    ///
    /// ```
    /// let world = tapegrad_mpi::World::init()?;
    /// let (correct, seen) = (3.0, 4.0); // this rank's counts
    /// let mut totals = [correct, seen];
    /// world.all_reduce_sum_slice(&mut totals);
    /// assert_eq!(totals, [3.0 * world.size() as f64, 4.0 * world.size() as f64]);
    /// # Ok::<(), tapegrad_mpi::Error>(())
    /// ```
    pub fn all_reduce_sum_slice(&self, values: &mut [f64]) {
        crate::average::all_reduce_sum_in_place(&self.comm, values);
    }

    /// Sends rank 0's `values` to every rank (the other ranks' values are overwritten). Every
    /// rank must pass a slice of the same length: MPI leaves a job whose ranks disagree about
    /// a message's length undefined.
    pub fn broadcast<T: Float + Equivalence>(&self, values: &mut [T]) {
        self.comm.process_at_rank(0).broadcast_into(values);
    }

    /// Runs `f` on rank 0 only (printing, plotting, writing files), returning its result there
    /// and `None` elsewhere.
    ///
    /// ```
    /// let world = tapegrad_mpi::World::init()?;
    /// let shown = world.on_root(|| println!("printed once, not once per rank"));
    /// assert_eq!(shown.is_some(), world.is_root());
    /// # Ok::<(), tapegrad_mpi::Error>(())
    /// ```
    pub fn on_root<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        self.is_root().then(f)
    }

    /// Writes `module`'s checkpoint (`tapegrad::io::save`) from rank 0 only (after
    /// [`broadcast_module`](World::broadcast_module) and with averaged gradients every rank
    /// holds the same parameters), then tells every rank whether it worked: all ranks return
    /// `Ok`, or all return an error. When it returns, the file is complete for every rank to
    /// read.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] on every rank if rank 0 could not write the file (rank 0's holds
    /// its `tapegrad::Error` as the source).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let world = tapegrad_mpi::World::init()?;
    /// let model = Linear::<f32>::new(3, 2, &mut StdRng::seed_from_u64(0));
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("model.safetensors");
    /// world.save_on_root(&path, &model)?;
    /// assert!(path.is_file());
    /// # Ok::<(), tapegrad_mpi::Error>(())
    /// ```
    pub fn save_on_root<T: Float, M: Module<T> + ?Sized>(
        &self,
        path: impl AsRef<Path>,
        module: &M,
    ) -> Result<(), Error> {
        let outcome = if self.is_root() {
            tapegrad::io::save(path, module).err()
        } else {
            None
        };
        // Rank 0's message, by length then bytes, so that every rank can report it.
        let message = outcome
            .as_ref()
            .map(|e| {
                Some(e.to_string())
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("{e:?}"))
            })
            .unwrap_or_default();
        let mut len = [message.len() as u64];
        self.comm.process_at_rank(0).broadcast_into(&mut len[..]);
        if len[0] == 0 {
            return Ok(());
        }
        let mut bytes = if self.is_root() {
            message.into_bytes()
        } else {
            vec![0u8; len[0] as usize]
        };
        self.comm.process_at_rank(0).broadcast_into(&mut bytes[..]);
        Err(Error::Checkpoint {
            message: String::from_utf8_lossy(&bytes).into_owned(),
            source: outcome,
        })
    }

    pub(crate) fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

/// `println!` on rank 0 only: progress lines printed once per job, not once per rank.
///
/// ```
/// let world = tapegrad_mpi::World::init()?;
/// tapegrad_mpi::root_println!(world, "{} ranks", world.size());
/// # Ok::<(), tapegrad_mpi::Error>(())
/// ```
#[macro_export]
macro_rules! root_println {
    ($world:expr, $($arg:tt)*) => {
        if $world.is_root() {
            println!($($arg)*);
        }
    };
}
