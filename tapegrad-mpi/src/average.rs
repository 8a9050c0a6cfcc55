//! Averaging gradients across ranks: flat buckets, one in-place all-reduce per bucket.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ops::Range;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use tapegrad::nn::Module;
use tapegrad::{Float, Gradients, Param, Tensor};

use crate::model::{check_agreement, describe};
use crate::{Error, World};

unsafe extern "C" {
    /// `MPI_IN_PLACE` of the MPI library linked (src/in_place.c).
    fn tapegrad_mpi_in_place() -> *mut c_void;
}

/// The largest count one MPI call takes (its counts are C `int`s).
const MAX_COUNT: usize = i32::MAX as usize;

/// Sums `buf` over all ranks in place (`MPI_Allreduce` with `MPI_IN_PLACE`), blocking; or, given
/// `requests`, starts the sum (`MPI_Iallreduce`) and pushes its requests, to be waited for
/// before `buf` is touched again.
fn all_reduce_in_place<T: Equivalence>(
    comm: &SimpleCommunicator,
    buf: &mut [T],
    mut requests: Option<&mut Vec<ffi::MPI_Request>>,
) {
    let datatype = T::equivalent_datatype().as_raw();
    let op = SystemOperation::sum().as_raw();
    for chunk in buf.chunks_mut(MAX_COUNT) {
        let count = chunk.len() as i32; // at most MAX_COUNT
        let data = chunk.as_mut_ptr().cast::<c_void>();
        // SAFETY: `chunk` is valid for `count` elements of `datatype` (T's own MPI type); the
        // communicator and operation are live handles. For the immediate form the caller keeps
        // the buffer alive and untouched until the request completes (GradientAverager waits for
        // every request before it reads its buckets or returns).
        unsafe {
            match requests.as_deref_mut() {
                None => {
                    ffi::MPI_Allreduce(tapegrad_mpi_in_place(), data, count, datatype, op, comm.as_raw());
                }
                Some(requests) => {
                    let mut request = ffi::RSMPI_REQUEST_NULL;
                    ffi::MPI_Iallreduce(
                        tapegrad_mpi_in_place(),
                        data,
                        count,
                        datatype,
                        op,
                        comm.as_raw(),
                        &mut request,
                    );
                    requests.push(request);
                }
            }
        }
    }
}

pub(crate) fn all_reduce_sum_in_place(comm: &SimpleCommunicator, values: &mut [f64]) {
    all_reduce_in_place(comm, values, None);
}

/// How long the last [`GradientAverager::average`] took, and how much of it was spent waiting
/// for MPI (the all-reduces, or with overlap only the part not hidden behind packing).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AverageTiming {
    /// The whole call: packing, all-reduces, unpacking.
    pub total: Duration,
    /// Inside MPI calls.
    pub communication: Duration,
}

/// Averages parameter gradients across ranks before the optimizer step, as PyTorch's
/// `DistributedDataParallel` and Horovod do: after [`average`](GradientAverager::average), every
/// rank holds the mean over ranks of every parameter's gradient, so identical optimizers keep
/// identical parameters. With a mean loss over each rank's batch of `B`, one step on `N` ranks is
/// one step on a batch of `N·B`.
///
/// Each call is a few large in-place all-reduces (`MPI_IN_PLACE`), not one per tensor:
///
/// - gradients smaller than [`in_place_bytes`](GradientAverager::in_place_bytes) (256 KiB by
///   default: biases, small layers) are packed into flat buckets of at most
///   [`bucket_bytes`](GradientAverager::bucket_bytes) (25 MiB by default, PyTorch's figure),
///   one all-reduce per bucket;
/// - larger ones are reduced each in a buffer of its own (the one copy every gradient needs,
///   since backward's gradients share their memory with `grads[x]`), one all-reduce each:
///   packing them into a bucket and unpacking again costs more than the call's latency saves
///   (measured in BENCHMARKS.md, W9).
///
/// With [`overlap`](GradientAverager::overlap), every reduction is started at once
/// (`MPI_Iallreduce`) and each is unpacked as soon as it completes, while the later ones are
/// still in flight. On the project's 2-core machine that was slower than blocking reductions
/// (Open MPI's nonblocking schedules), so it is off by default.
///
/// A parameter that some ranks used and others did not (a branch taken on one rank only) gets
/// the sum of the gradients that exist divided by the number of ranks, on every rank; one that
/// no rank used keeps no gradient, so optimizers leave it alone everywhere. (Which is which is
/// learnt from one small all-reduce of a flag per parameter, the first of each call.)
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let world = tapegrad_mpi::World::init()?;
/// let model = Linear::<f64>::new(3, 1, &mut StdRng::seed_from_u64(world.rank() as u64));
/// world.broadcast_module(&model)?;
/// let mut averager = tapegrad_mpi::GradientAverager::new(&world, &model)?;
/// let mut opt = Sgd::new(model.parameters(), SgdConfig { lr: 0.1, ..Default::default() });
///
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::from_vec(vec![1.0, world.rank() as f64, 2.0], &[1, 3]));
/// let mut grads = model.forward(&tape, x).square().mean().backward();
/// averager.average(&mut grads);
/// drop(tape);
/// opt.step(&grads);
/// # Ok::<(), tapegrad_mpi::Error>(())
/// ```
pub struct GradientAverager<'w, T: Float + Equivalence> {
    world: &'w World,
    params: Vec<Param<T>>,
    index: HashMap<u64, usize>,
    bucket_bytes: usize,
    in_place_bytes: usize,
    overlap: bool,
    /// The parameters (indices) of each packed bucket, and its buffer.
    buckets: Vec<(Vec<usize>, Vec<T>)>,
    /// The parameters reduced unpacked, each in a buffer of its own.
    in_place: Vec<usize>,
    flags: Vec<T>,
    timing: AverageTiming,
}

impl<T: Float + Equivalence> std::fmt::Debug for GradientAverager<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientAverager")
            .field("parameters", &self.params.len())
            .field("bucket_bytes", &self.bucket_bytes)
            .field("in_place_bytes", &self.in_place_bytes)
            .field("buckets", &self.buckets.len())
            .field("in_place", &self.in_place.len())
            .field("overlap", &self.overlap)
            .finish()
    }
}

impl<'w, T: Float + Equivalence> GradientAverager<'w, T> {
    /// An averager for `module`'s parameters (in [`Module::parameters`] order, the same on every
    /// rank), with 25 MiB buckets, gradients of 256 KiB or more reduced unpacked, no overlap. A
    /// collective call: every rank must make it.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] on every rank if the ranks' models differ (names, shapes,
    /// order), naming the lowest rank that differs and its first differing parameter.
    pub fn new<M: Module<T> + ?Sized>(world: &'w World, module: &M) -> Result<Self, Error> {
        let named = module.named_parameters();
        check_agreement(world, "GradientAverager::new", &describe(&named, &[]))?;
        let params: Vec<Param<T>> = named.into_iter().map(|(_, p)| p).collect();
        let index = params.iter().enumerate().map(|(k, p)| (p.id(), k)).collect();
        let mut averager = GradientAverager {
            world,
            params,
            index,
            bucket_bytes: 25 << 20,
            in_place_bytes: 256 << 10,
            overlap: false,
            buckets: Vec::new(),
            in_place: Vec::new(),
            flags: Vec::new(),
            timing: AverageTiming::default(),
        };
        averager.plan();
        Ok(averager)
    }

    /// Packed buckets of at most `bytes` each. Smaller buckets overlap better, larger ones pay
    /// MPI's per-call latency less often. Every rank must choose the same.
    ///
    /// # Panics
    /// If `bytes` is 0.
    #[track_caller]
    pub fn bucket_bytes(mut self, bytes: usize) -> Self {
        assert!(
            bytes > 0,
            "tapegrad-mpi: GradientAverager::bucket_bytes: the bucket size must be positive, got 0"
        );
        self.bucket_bytes = bytes;
        self.plan();
        self
    }

    /// Gradients of at least `bytes` are reduced in a buffer of their own instead of being packed
    /// (`usize::MAX`: pack every gradient; 0: pack none but rank-0 ones). Every rank must choose
    /// the same.
    pub fn in_place_bytes(mut self, bytes: usize) -> Self {
        self.in_place_bytes = bytes;
        self.plan();
        self
    }

    /// Starts every all-reduce at once, nonblocking, and unpacks each as it completes (`true`),
    /// or runs them one after the other (`false`, the default). The result is the same.
    pub fn overlap(mut self, overlap: bool) -> Self {
        self.overlap = overlap;
        self
    }

    /// How many packed buckets one [`average`](GradientAverager::average) reduces.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// How many gradients one [`average`](GradientAverager::average) reduces in buffers of their
    /// own rather than packed.
    pub fn in_place_count(&self) -> usize {
        self.in_place.len()
    }

    /// The time the last [`average`](GradientAverager::average) took, and its time inside MPI.
    pub fn last_timing(&self) -> AverageTiming {
        self.timing
    }

    /// Splits the parameters into packed buckets of at most `bucket_bytes` and unpacked ones.
    fn plan(&mut self) {
        let size = std::mem::size_of::<T>();
        let per_bucket = (self.bucket_bytes / size).max(1);
        self.buckets.clear();
        self.in_place.clear();
        let mut current: Vec<usize> = Vec::new();
        let mut count = 0;
        for (k, p) in self.params.iter().enumerate() {
            let n = p.value().numel();
            // Rank-0 values live inside the tensor, which may move: always packed.
            if n > 1 && n.saturating_mul(size) >= self.in_place_bytes {
                self.in_place.push(k);
                continue;
            }
            if !current.is_empty() && count + n > per_bucket {
                self.buckets.push((std::mem::take(&mut current), Vec::new()));
                count = 0;
            }
            current.push(k);
            count += n;
        }
        if !current.is_empty() {
            self.buckets.push((current, Vec::new()));
        }
    }

    /// Replaces every parameter gradient in `grads` by its mean over all ranks (see the type's
    /// documentation). A collective call: every rank must make it, once per step, before
    /// `opt.step(&grads)`. On a job of one rank it returns at once.
    ///
    /// # Panics
    /// If `grads` holds a gradient for a parameter that is not one of the module's given to
    /// [`new`](GradientAverager::new) (it would not be averaged, and the ranks would drift
    /// apart): the message names the parameter's id and shape.
    #[track_caller]
    pub fn average(&mut self, grads: &mut Gradients<T>) {
        let started = Instant::now();
        for (p, _) in grads.params() {
            assert!(
                self.index.contains_key(&p.id()),
                "tapegrad-mpi: GradientAverager::average: the gradients hold parameter {} of shape \
                 {:?}, which is not one of the {} parameters of the module given to \
                 GradientAverager::new",
                p.id(),
                p.shape(),
                self.params.len()
            );
        }
        if self.world.size() == 1 {
            self.timing = AverageTiming::default();
            return;
        }
        let comm = self.world.comm();
        let mut communication = Duration::ZERO;

        // Which parameters have a gradient on some rank: those get one everywhere (zeros where
        // missing, so that every rank reduces the same tensors); the others none.
        self.flags.clear();
        self.flags.extend(
            self.params
                .iter()
                .map(|p| if grads.param(p).is_some() { T::ONE } else { T::ZERO }),
        );
        let t = Instant::now();
        all_reduce_in_place(comm, &mut self.flags, None);
        communication += t.elapsed();
        let used: Vec<bool> = self.flags.iter().map(|&c| c > T::ZERO).collect();
        let missing: Vec<usize> = (0..self.params.len())
            .filter(|&k| used[k] && grads.param(&self.params[k]).is_none())
            .collect();
        for k in missing {
            let p = &self.params[k];
            grads.insert_param(p, Tensor::zeros(&p.shape()));
        }

        // The reductions, each started (or run) as soon as its data is ready: buckets once
        // packed, in-place gradients at once. Every gradient is divided by the number of ranks
        // on its way in (packing, or the copy that gives it a buffer of its own), so that the
        // sums are the means: one pass over the data instead of a copy and a scaling. (With a
        // power of two ranks the division is exact and the result is that of scaling the sum.)
        let scale = T::ONE / T::from_f64(self.world.size() as f64);
        let mut requests: Vec<ffi::MPI_Request> = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new();
        let mut reduce = |buf: &mut [T], communication: &mut Duration| {
            let t = Instant::now();
            if self.overlap {
                let first = requests.len();
                all_reduce_in_place(comm, buf, Some(&mut requests));
                pending.push(first..requests.len());
            } else {
                all_reduce_in_place(comm, buf, None);
            }
            *communication += t.elapsed();
        };
        for (members, buf) in &mut self.buckets {
            buf.clear();
            for &k in members.iter() {
                let p = &self.params[k];
                match grads.param(p) {
                    Some(g) => buf.extend(g.as_slice().iter().map(|&x| x * scale)),
                    None => buf.resize(buf.len() + p.value().numel(), T::ZERO), // no rank used it
                }
            }
            reduce(buf, &mut communication);
        }
        for &k in &self.in_place {
            let p = &self.params[k];
            let Some(g) = grads.param(p) else { continue };
            // A fresh buffer rather than writing into the gradient: backward's gradients share
            // their buffers with the gradients by var (`grads[x]`), so writing would copy first.
            let scaled: Vec<T> = g.as_slice().iter().map(|&x| x * scale).collect();
            grads.insert_param(p, Tensor::from_vec(scaled, g.shape()));
            if let Some(g) = grads.param_mut(p) {
                reduce(g.as_mut_slice(), &mut communication);
            }
        }

        // Each packed bucket is unpacked as soon as its reduction completes; the in-place ones
        // only need to complete.
        let mut next = 0;
        let mut wait = |communication: &mut Duration| {
            if self.overlap {
                let t = Instant::now();
                let reqs = &mut requests[pending[next].clone()];
                // SAFETY: live requests started above, each waited for once, in order.
                unsafe {
                    ffi::MPI_Waitall(reqs.len() as i32, reqs.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE);
                }
                next += 1;
                *communication += t.elapsed();
            }
        };
        for (members, buf) in &self.buckets {
            wait(&mut communication);
            let mut offset = 0;
            for &k in members {
                let p = &self.params[k];
                let n = p.value().numel();
                let mean = &buf[offset..offset + n];
                offset += n;
                if used[k] {
                    grads.insert_param(p, Tensor::from_vec(mean.to_vec(), &p.shape()));
                }
            }
        }
        for &k in &self.in_place {
            if grads.param(&self.params[k]).is_some() {
                wait(&mut communication);
            }
        }
        self.timing = AverageTiming {
            total: started.elapsed(),
            communication,
        };
    }
}
