//! What can go wrong in data-parallel training, as values every rank receives alike.

use std::fmt;

/// An error of `tapegrad-mpi`. Collective operations return the same kind of error on every
/// rank (never an error on one rank while another waits), so a training script can print it
/// and exit everywhere.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// MPI was initialised already in this process: a second [`World::init`](crate::World::init),
    /// or one after a `World` was dropped (MPI cannot start again after `MPI_Finalize`).
    AlreadyInitialized,
    /// The ranks disagree about the model (parameter or buffer names, shapes or count), found by
    /// the start-up check of [`World::broadcast_module`](crate::World::broadcast_module) and
    /// [`GradientAverager::new`](crate::GradientAverager::new).
    ModelMismatch {
        /// The operation that checked (`"broadcast_module"`, `"GradientAverager::new"`).
        op: &'static str,
        /// The lowest rank whose model differs from rank 0's.
        rank: usize,
        /// What differs, first difference first: the name, and the shapes on both ranks.
        detail: String,
    },
    /// Writing a checkpoint failed on rank 0 ([`World::save_on_root`](crate::World::save_on_root)).
    /// Rank 0 returns its own error; the other ranks get this one with rank 0's message.
    Checkpoint {
        /// rank 0's error message.
        message: String,
        /// rank 0's error itself (only on rank 0).
        source: Option<tapegrad::Error>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyInitialized => write!(
                f,
                "tapegrad-mpi: World::init: MPI was initialised already in this process (by an \
                 earlier World::init, or before a World was dropped: MPI cannot be started twice); \
                 create one World at the start of main and pass it by reference"
            ),
            Error::ModelMismatch { op, rank, detail } => write!(
                f,
                "tapegrad-mpi: {op}: rank {rank} has another model than rank 0: {detail} (every \
                 rank must build the same model, with the same sizes, before training)"
            ),
            Error::Checkpoint { message, .. } => {
                write!(
                    f,
                    "tapegrad-mpi: save_on_root: rank 0 could not write the checkpoint: {message}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Checkpoint { source: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}
