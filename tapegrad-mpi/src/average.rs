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
/// Gradients are packed into flat buckets of about [`bucket_bytes`](GradientAverager::bucket_bytes)
/// (25 MiB by default, PyTorch's figure) and each bucket is summed with one in-place all-reduce
/// (`MPI_IN_PLACE`): few large messages instead of one per tensor. With
/// [`overlap`](GradientAverager::overlap), bucket `k` is reduced (`MPI_Iallreduce`) while bucket
/// `k + 1` is packed and earlier ones are unpacked.
///
/// A parameter that some ranks used and others did not (a branch taken on one rank only) gets
/// the sum of the gradients that exist divided by the number of ranks, on every rank; one that
/// no rank used keeps no gradient, so optimizers leave it alone everywhere.
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
    overlap: bool,
    /// Parameter indices of each bucket; bucket 0 also carries one presence flag per parameter,
    /// before its gradients.
    buckets: Vec<Range<usize>>,
    buffers: Vec<Vec<T>>,
    timing: AverageTiming,
}

impl<T: Float + Equivalence> std::fmt::Debug for GradientAverager<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientAverager")
            .field("parameters", &self.params.len())
            .field("bucket_bytes", &self.bucket_bytes)
            .field("buckets", &self.buckets.len())
            .field("overlap", &self.overlap)
            .finish()
    }
}

impl<'w, T: Float + Equivalence> GradientAverager<'w, T> {
    /// An averager for `module`'s parameters (in [`Module::parameters`] order, the same on every
    /// rank), with 25 MiB buckets and no overlap. A collective call: every rank must make it.
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
            overlap: false,
            buckets: Vec::new(),
            buffers: Vec::new(),
            timing: AverageTiming::default(),
        };
        averager.plan();
        Ok(averager)
    }

    /// Buckets of about `bytes` (a parameter larger than that travels in a bucket of its own).
    /// Smaller buckets overlap better, larger ones pay MPI's per-message latency less often.
    /// Every rank must choose the same size.
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

    /// Reduces each bucket with a nonblocking all-reduce while the next is packed (`true`), or
    /// each with a blocking one (`false`, the default). The result is the same.
    pub fn overlap(mut self, overlap: bool) -> Self {
        self.overlap = overlap;
        self
    }

    /// How many buckets (and so all-reduce calls) one [`average`](GradientAverager::average) makes.
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The time the last [`average`](GradientAverager::average) took, and its time inside MPI.
    pub fn last_timing(&self) -> AverageTiming {
        self.timing
    }

    /// Splits the parameters into buckets of about `bucket_bytes` each.
    fn plan(&mut self) {
        let per_bucket = (self.bucket_bytes / std::mem::size_of::<T>()).max(1);
        self.buckets.clear();
        let mut start = 0;
        let mut count = self.params.len(); // bucket 0's presence flags
        for (k, p) in self.params.iter().enumerate() {
            let n = p.value().numel();
            if k > start && count + n > per_bucket {
                self.buckets.push(start..k);
                start = k;
                count = 0;
            }
            count += n;
        }
        self.buckets.push(start..self.params.len());
        self.buffers = self.buckets.iter().map(|_| Vec::new()).collect();
    }

    /// Replaces every parameter gradient in `grads` by its mean over all ranks (see the type's
    /// documentation). A collective call: every rank must make it, once per step, before
    /// `opt.step(&grads)`.
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
        let comm = self.world.comm();
        let mut communication = Duration::ZERO;
        let mut requests: Vec<ffi::MPI_Request> = Vec::new();
        let mut pending: Vec<Range<usize>> = Vec::new(); // requests of each bucket
        for b in 0..self.buckets.len() {
            let range = self.buckets[b].clone();
            let buf = &mut self.buffers[b];
            buf.clear();
            if b == 0 {
                buf.extend(
                    self.params
                        .iter()
                        .map(|p| if grads.param(p).is_some() { T::ONE } else { T::ZERO }),
                );
            }
            for p in &self.params[range] {
                match grads.param(p) {
                    Some(g) => buf.extend_from_slice(g.as_slice()),
                    None => buf.resize(buf.len() + p.value().numel(), T::ZERO),
                }
            }
            let t = Instant::now();
            if self.overlap {
                let first = requests.len();
                all_reduce_in_place(comm, buf, Some(&mut requests));
                pending.push(first..requests.len());
            } else {
                all_reduce_in_place(comm, buf, None);
            }
            communication += t.elapsed();
        }
        let scale = T::ONE / T::from_f64(self.world.size() as f64);
        let mut presence: Vec<bool> = Vec::new();
        for b in 0..self.buckets.len() {
            if self.overlap {
                let t = Instant::now();
                let reqs = &mut requests[pending[b].clone()];
                // SAFETY: the requests are live ones started above, each waited for once.
                unsafe {
                    ffi::MPI_Waitall(reqs.len() as i32, reqs.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE);
                }
                communication += t.elapsed();
            }
            let buf = &self.buffers[b];
            let mut offset = 0;
            if b == 0 {
                presence = buf[..self.params.len()].iter().map(|&c| c > T::ZERO).collect();
                offset = self.params.len();
            }
            for k in self.buckets[b].clone() {
                let p = &self.params[k];
                let n = p.value().numel();
                let sum = &buf[offset..offset + n];
                offset += n;
                if !presence[k] {
                    continue;
                }
                match grads.param_mut(p) {
                    Some(g) => {
                        for (x, &s) in g.as_mut_slice().iter_mut().zip(sum) {
                            *x = s * scale;
                        }
                    }
                    None => {
                        let mean = sum.iter().map(|&s| s * scale).collect();
                        grads.insert_param(p, Tensor::from_vec(mean, &p.shape()));
                    }
                }
            }
        }
        self.timing = AverageTiming {
            total: started.elapsed(),
            communication,
        };
    }
}
