//! Which examples each rank trains on: PyTorch's `DistributedSampler`.

use tapegrad::rand::SeedableRng;
use tapegrad::rand::rngs::StdRng;
use tapegrad::rand::seq::SliceRandom;

/// Splits a data set of `len` examples between `replicas` ranks, each rank iterating its own
/// shard, as PyTorch's `torch.utils.data.DistributedSampler` does:
///
/// - each epoch the whole index list is shuffled with a generator seeded by `seed + epoch`, the
///   same on every rank (so the shards of one epoch never overlap), and differently each epoch
///   ([`set_epoch`](DistributedSampler::set_epoch) before every epoch, as in PyTorch);
/// - rank `r` takes every `replicas`-th index starting at `r`;
/// - when `len` is not a multiple of `replicas`, either the list is padded by repeating its
///   first indices so that every rank gets `ceil(len / replicas)` examples (the default), or
///   its tail is dropped so that every rank gets `floor(len / replicas)`
///   ([`drop_last`](DistributedSampler::drop_last)). Every rank has the same number of examples,
///   and so the same number of steps: no rank waits at an all-reduce the others never reach.
///
/// It needs no MPI: the rank and the number of ranks are plain numbers (`world.rank()`,
/// `world.size()`).
///
/// ```
/// use tapegrad_mpi::DistributedSampler;
/// let mut shards: Vec<Vec<usize>> = (0..3)
///     .map(|rank| DistributedSampler::new(10, 3, rank).seed(7).indices())
///     .collect();
/// assert!(shards.iter().all(|s| s.len() == 4)); // 10 examples padded to 12
/// let mut all: Vec<usize> = shards.concat();
/// all.sort();
/// all.dedup();
/// assert_eq!(all, (0..10).collect::<Vec<_>>()); // every example, in some rank's shard
/// ```
///
/// In a training loop, the shard's mini-batches are read with `Dataset::select`:
///
/// ```
/// use tapegrad::data::Dataset;
/// use tapegrad::Tensor;
/// use tapegrad_mpi::DistributedSampler;
/// let data = Dataset::new(Tensor::<f32>::zeros(&[100, 4]), Tensor::zeros(&[100, 1]));
/// let mut sampler = DistributedSampler::new(data.len(), 2, 1).drop_last(true);
/// for epoch in 0..3 {
///     sampler.set_epoch(epoch);
///     for batch in sampler.indices().chunks(16) {
///         let batch = data.select(batch);
///         assert_eq!(batch.features.shape()[1], 4);
///     }
/// }
/// ```
#[derive(Clone, Debug)]
pub struct DistributedSampler {
    len: usize,
    replicas: usize,
    rank: usize,
    shuffle: bool,
    seed: u64,
    epoch: u64,
    drop_last: bool,
}

impl DistributedSampler {
    /// The shard of rank `rank` among `replicas` ranks of a data set of `len` examples:
    /// shuffled with seed 0, padded (PyTorch's defaults).
    ///
    /// # Panics
    /// If `replicas` is 0 or `rank >= replicas` (the message names both).
    #[track_caller]
    pub fn new(len: usize, replicas: usize, rank: usize) -> Self {
        assert!(
            replicas > 0 && rank < replicas,
            "tapegrad-mpi: DistributedSampler::new: rank {rank} is not one of {replicas} ranks \
             (ranks are 0..replicas)"
        );
        DistributedSampler {
            len,
            replicas,
            rank,
            shuffle: true,
            seed: 0,
            epoch: 0,
            drop_last: false,
        }
    }

    /// This rank's shard in `world`: `new(len, world.size(), world.rank())`.
    pub fn for_world(len: usize, world: &crate::World) -> Self {
        Self::new(len, world.size(), world.rank())
    }

    /// Shuffles each epoch (`true`, the default) or keeps the data set's order.
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.shuffle = shuffle;
        self
    }

    /// The seed of the shuffle, which must be the same on every rank (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Drops the tail that does not divide evenly between ranks (`true`) instead of padding
    /// with repeated examples (`false`, the default).
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The epoch whose shuffle [`indices`](DistributedSampler::indices) gives; call it before
    /// each epoch with the same value on every rank, or every epoch repeats the first order.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// The epoch set last (0 at first).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many examples each rank gets per epoch.
    pub fn num_samples(&self) -> usize {
        if self.drop_last {
            self.len / self.replicas
        } else {
            self.len.div_ceil(self.replicas)
        }
    }

    /// How many examples all ranks together get per epoch (`num_samples() * replicas`):
    /// at least `len` when padding, at most `len` when dropping.
    pub fn total_size(&self) -> usize {
        self.num_samples() * self.replicas
    }

    /// This rank's indices into the data set for the current epoch, in the order to visit them.
    pub fn indices(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        if self.shuffle {
            let mut rng = StdRng::seed_from_u64(self.seed.wrapping_add(self.epoch));
            order.shuffle(&mut rng);
        }
        let total = self.total_size();
        if total > order.len() && !order.is_empty() {
            // Padding repeats the list from its start, as often as needed.
            let missing = total - order.len();
            let repeated: Vec<usize> = order.iter().copied().cycle().take(missing).collect();
            order.extend(repeated);
        }
        order.truncate(total);
        order.into_iter().skip(self.rank).step_by(self.replicas).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::DistributedSampler;

    /// How often each example appears over all ranks' shards of one epoch.
    fn counts(len: usize, replicas: usize, drop_last: bool, epoch: u64) -> Vec<usize> {
        let mut counts = vec![0; len];
        for rank in 0..replicas {
            let mut s = DistributedSampler::new(len, replicas, rank)
                .seed(42)
                .drop_last(drop_last);
            s.set_epoch(epoch);
            let shard = s.indices();
            assert_eq!(shard.len(), s.num_samples());
            for i in shard {
                counts[i] += 1;
            }
        }
        counts
    }

    #[test]
    fn an_even_split_covers_every_example_exactly_once() {
        for replicas in 1..=4 {
            for drop_last in [false, true] {
                assert!(counts(12, replicas, drop_last, 3).iter().all(|&c| c == 1));
            }
        }
    }

    #[test]
    fn padding_repeats_only_as_many_examples_as_needed() {
        for (len, replicas) in [(10, 3), (7, 2), (1, 4), (5, 8), (0, 3)] {
            let c = counts(len, replicas, false, 1);
            assert!(c.iter().all(|&c| c >= 1), "{len} over {replicas}: {c:?}");
            assert_eq!(c.iter().sum::<usize>(), len.div_ceil(replicas) * replicas);
            // Fewer examples than ranks: the list repeats as a whole.
            assert!(
                c.iter().all(|&c| c <= replicas.div_ceil(len.max(1)).max(2)),
                "{c:?}"
            );
        }
    }

    #[test]
    fn dropping_visits_no_example_twice_and_drops_fewer_than_replicas() {
        for (len, replicas) in [(10, 3), (7, 2), (1, 4), (5, 8)] {
            let c = counts(len, replicas, true, 2);
            assert!(c.iter().all(|&c| c <= 1));
            let seen: usize = c.iter().sum();
            assert_eq!(seen, len / replicas * replicas);
            assert!(len - seen < replicas);
        }
    }

    #[test]
    fn epochs_reshuffle_and_the_same_epoch_repeats() {
        let mut s = DistributedSampler::new(100, 2, 0).seed(5);
        let first = s.indices();
        assert_eq!(first, s.indices());
        s.set_epoch(1);
        assert_ne!(first, s.indices());
        s.set_epoch(0);
        assert_eq!(first, s.indices());
        let other_seed = DistributedSampler::new(100, 2, 0).seed(6).indices();
        assert_ne!(first, other_seed);
    }

    #[test]
    fn without_shuffle_ranks_take_strided_indices() {
        let s = DistributedSampler::new(5, 2, 1).shuffle(false);
        assert_eq!(s.indices(), [1, 3, 0]); // padded with index 0
        let s = DistributedSampler::new(5, 2, 1).shuffle(false).drop_last(true);
        assert_eq!(s.indices(), [1, 3]);
    }

    #[test]
    fn a_rank_outside_the_job_is_refused_with_both_numbers() {
        let err = std::panic::catch_unwind(|| DistributedSampler::new(10, 2, 2)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("rank 2") && msg.contains("2 ranks"), "{msg}");
    }
}
