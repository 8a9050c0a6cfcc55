//! Every rank starts from rank 0's model: the start-up agreement check and the broadcast.

use mpi::traits::*;
use tapegrad::nn::Module;
use tapegrad::{Float, Param};

use crate::{Error, World};

/// One line per parameter and buffer: `kind name shape`, the model's description that all ranks
/// must share.
pub(crate) fn describe<T: Float>(
    params: &[(String, Param<T>)],
    buffers: &[(String, Param<T>)],
) -> Vec<String> {
    let element = T::NAME;
    let line = |kind: &str, (name, p): &(String, Param<T>)| {
        format!("{kind} `{name}` of shape {:?} ({element})", p.shape())
    };
    params
        .iter()
        .map(|p| line("parameter", p))
        .chain(buffers.iter().map(|b| line("buffer", b)))
        .collect()
}

/// Checks that every rank's `lines` equal rank 0's. Every rank makes the same collective calls
/// whatever the outcome (so a mismatch never leaves a rank waiting), and every rank returns the
/// same error, naming the lowest rank that differs and its first difference.
pub(crate) fn check_agreement(world: &World, op: &'static str, lines: &[String]) -> Result<(), Error> {
    let comm = world.comm();
    let root = comm.process_at_rank(0);
    let mut text = if world.is_root() {
        lines.join("\n").into_bytes()
    } else {
        Vec::new()
    };
    let mut len = [text.len() as u64];
    root.broadcast_into(&mut len[..]);
    text.resize(len[0] as usize, 0);
    root.broadcast_into(&mut text[..]);
    let root_text = String::from_utf8_lossy(&text);
    let root_lines: Vec<&str> = if root_text.is_empty() {
        Vec::new()
    } else {
        root_text.split('\n').collect()
    };

    let difference = first_difference(&root_lines, lines);
    // The lowest rank that differs (size() if none), known to all.
    let mut lowest = [if difference.is_some() {
        world.rank() as u64
    } else {
        world.size() as u64
    }];
    let mut mine = lowest;
    comm.all_reduce_into(
        &mine[..],
        &mut lowest[..],
        mpi::collective::SystemOperation::min(),
    );
    let lowest = lowest[0] as usize;
    if lowest == world.size() {
        return Ok(());
    }
    // That rank tells the others what differs.
    let mut detail = if world.rank() == lowest {
        difference.unwrap_or_default().into_bytes()
    } else {
        Vec::new()
    };
    mine[0] = detail.len() as u64;
    let sender = comm.process_at_rank(lowest as i32);
    sender.broadcast_into(&mut mine[..]);
    detail.resize(mine[0] as usize, 0);
    sender.broadcast_into(&mut detail[..]);
    Err(Error::ModelMismatch {
        op,
        rank: lowest,
        detail: String::from_utf8_lossy(&detail).into_owned(),
    })
}

/// The first line where `mine` differs from rank 0's, said in words.
fn first_difference(root: &[&str], mine: &[String]) -> Option<String> {
    for (k, (theirs, ours)) in root.iter().zip(mine).enumerate() {
        if *theirs != ours.as_str() {
            return Some(format!("entry {k} is {ours} here but {theirs} on rank 0"));
        }
    }
    match mine.len().cmp(&root.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(format!(
            "{} entries here but {} on rank 0; the first extra one is {}",
            mine.len(),
            root.len(),
            mine[root.len()]
        )),
        std::cmp::Ordering::Less => Some(format!(
            "{} entries here but {} on rank 0; the first missing one is {}",
            mine.len(),
            root.len(),
            root[mine.len()]
        )),
    }
}

impl World {
    /// Copies every parameter and buffer of rank 0's `module` to every other rank, so that all
    /// ranks start training from the same values whatever seeds they initialised with (PyTorch's
    /// `DistributedDataParallel` does the same on construction). The values travel in flat
    /// buckets of at most 64 MiB, not one call per tensor.
    ///
    /// First checks, once, that every rank has the same parameters and buffers (names, shapes,
    /// element type, order). Dropout generators are not copied: each rank keeps its own masks.
    ///
    /// # Errors
    /// [`Error::ModelMismatch`] on every rank if any rank's model differs from rank 0's, naming
    /// the lowest such rank and its first differing parameter with both shapes; nothing is
    /// copied then.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let world = tapegrad_mpi::World::init()?;
    /// // Each rank its own seed: different initial weights...
    /// let mut rng = StdRng::seed_from_u64(world.rank() as u64);
    /// let model = Mlp::<f32>::new(&[4, 8, 2], Activation::Relu, &mut rng);
    /// // ... until rank 0's are everyone's.
    /// world.broadcast_module(&model)?;
    /// # Ok::<(), tapegrad_mpi::Error>(())
    /// ```
    pub fn broadcast_module<T: Float + Equivalence, M: Module<T> + ?Sized>(
        &self,
        module: &M,
    ) -> Result<(), Error> {
        let params = module.named_parameters();
        let buffers = module.named_buffers();
        check_agreement(self, "broadcast_module", &describe(&params, &buffers))?;
        let all: Vec<Param<T>> = params.into_iter().chain(buffers).map(|(_, p)| p).collect();
        const BUCKET_BYTES: usize = 64 << 20;
        let per_bucket = (BUCKET_BYTES / std::mem::size_of::<T>()).max(1);
        let mut start = 0;
        let mut flat: Vec<T> = Vec::new();
        while start < all.len() {
            // Parameters [start, end) fill one bucket (a larger one travels alone).
            let mut end = start;
            let mut count = 0;
            while end < all.len() && (end == start || count + all[end].value().numel() <= per_bucket) {
                count += all[end].value().numel();
                end += 1;
            }
            flat.clear();
            for p in &all[start..end] {
                flat.extend_from_slice(p.value().as_slice());
            }
            self.comm().process_at_rank(0).broadcast_into(&mut flat[..]);
            if !self.is_root() {
                let mut offset = 0;
                for p in &all[start..end] {
                    let n = p.value().numel();
                    p.update(|t| t.as_mut_slice().copy_from_slice(&flat[offset..offset + n]));
                    offset += n;
                }
            }
            start = end;
        }
        Ok(())
    }
}
