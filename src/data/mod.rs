//! Data: an in-memory [`Dataset`], a [`Batches`] iterator (batch size, seeded shuffling,
//! `drop_last`) and synthetic generators ([`linear`], [`moons`], [`circles`], [`spirals`],
//! [`xor`]); file loaders for numeric CSV tables ([`csv`]) and IDX arrays such as MNIST ([`idx`]).
//!
//! Targets are a tensor whose first axis matches the features': values for regression, or class
//! indices stored as floats for classification ([`Dataset::labels`] and [`Batch::labels`] turn them
//! back into the `&[usize]` that [`loss::cross_entropy`](crate::loss::cross_entropy) takes).
//!
//! ```
//! use tapegrad::data;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let ds = data::moons::<f32, _>(100, 0.1, &mut rng);
//! assert_eq!((ds.len(), ds.features.shape()), (100, &[100, 2][..]));
//! let mut rows = 0;
//! for batch in ds.batches(32).shuffle(&mut rng).drop_last(true) {
//!     assert_eq!(batch.features.shape(), &[32, 2]);
//!     assert_eq!(batch.labels().len(), 32);
//!     rows += batch.len();
//! }
//! assert_eq!(rows, 96);
//! ```

use rand::Rng;
use rand::seq::SliceRandom;

pub mod csv;
pub mod idx;
mod limit;

pub use limit::DEFAULT_MAX_BYTES;
pub(crate) use limit::{excerpt, read_file, read_reader};

use crate::{Float, Tensor};

/// Features and targets in memory, one example per index of their first axis.
///
/// ```
/// use tapegrad::{Tensor, data::Dataset};
/// let ds = Dataset::new(Tensor::<f32>::zeros(&[3, 2]), Tensor::from_vec(vec![0., 1., 1.], &[3]));
/// assert_eq!(ds.len(), 3);
/// assert_eq!(ds.labels(), vec![0, 1, 1]);
/// ```
#[derive(Clone, Debug)]
pub struct Dataset<T: Float = f32> {
    /// Features `[N, ...]`.
    pub features: Tensor<T>,
    /// Targets `[N, ...]`: values, or class indices stored as floats.
    pub targets: Tensor<T>,
}

impl<T: Float> Dataset<T> {
    /// A dataset from features and targets with the same first axis.
    ///
    /// # Panics
    /// If either is rank 0 or their first axes differ.
    #[track_caller]
    pub fn new(features: Tensor<T>, targets: Tensor<T>) -> Self {
        let (fs, ts) = (features.shape(), targets.shape());
        assert!(
            !fs.is_empty() && !ts.is_empty() && fs[0] == ts[0],
            "tapegrad: Dataset::new: features {fs:?} and targets {ts:?} need the same first axis"
        );
        Dataset { features, targets }
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.features.shape()[0]
    }

    /// `true` when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets as class indices (see the module docs).
    ///
    /// # Panics
    /// If a target is negative, fractional or not finite.
    #[track_caller]
    pub fn labels(&self) -> Vec<usize> {
        to_labels(&self.targets)
    }

    /// Examples at `indices`, in that order, as one batch.
    ///
    /// # Panics
    /// If an index is out of range.
    ///
    /// ```
    /// use tapegrad::{Tensor, data::Dataset};
    /// let ds = Dataset::new(Tensor::<f64>::from_vec(vec![1., 2., 3.], &[3, 1]), Tensor::from_vec(vec![0., 1., 2.], &[3]));
    /// assert_eq!(ds.select(&[2, 0]).features.to_vec(), vec![3., 1.]);
    /// ```
    #[track_caller]
    pub fn select(&self, indices: &[usize]) -> Batch<T> {
        self.gather("Dataset::select", indices)
    }

    /// The rows at `indices`; `op` names the caller in the out-of-range message.
    #[track_caller]
    fn gather(&self, op: &str, indices: &[usize]) -> Batch<T> {
        Batch {
            features: gather_rows(op, &self.features, indices),
            targets: gather_rows(op, &self.targets, indices),
        }
    }

    /// The examples at `indices`, in that order, as a new dataset (for splits and subsets).
    ///
    /// # Panics
    /// If an index is out of range.
    ///
    /// ```
    /// use tapegrad::{Tensor, data::Dataset};
    /// let ds = Dataset::new(Tensor::<f32>::from_vec(vec![1., 2., 3.], &[3, 1]), Tensor::from_vec(vec![0., 1., 0.], &[3]));
    /// let first_two = ds.subset(&[0, 1]);
    /// assert_eq!((first_two.len(), first_two.labels()), (2, vec![0, 1]));
    /// ```
    #[track_caller]
    pub fn subset(&self, indices: &[usize]) -> Dataset<T> {
        let Batch { features, targets } = self.gather("Dataset::subset", indices);
        Dataset { features, targets }
    }

    /// Splits the examples at random into two datasets of `first` and `len() - first` examples
    /// (PyTorch's `random_split`), for a training and a validation set. Each keeps the original
    /// order of its examples.
    ///
    /// # Panics
    /// If `first` is larger than the dataset.
    ///
    /// ```
    /// use tapegrad::data;
    /// use tapegrad::rand::{SeedableRng, rngs::StdRng};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let ds = data::moons::<f32, _>(100, 0.1, &mut rng);
    /// let (train, valid) = ds.random_split(80, &mut rng);
    /// assert_eq!((train.len(), valid.len()), (80, 20));
    /// ```
    #[track_caller]
    pub fn random_split<R: Rng + ?Sized>(&self, first: usize, rng: &mut R) -> (Dataset<T>, Dataset<T>) {
        let n = self.len();
        assert!(
            first <= n,
            "tapegrad: Dataset::random_split: cannot take {first} of {n} examples"
        );
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let (a, b) = order.split_at_mut(first);
        a.sort_unstable();
        b.sort_unstable();
        (self.subset(a), self.subset(b))
    }

    /// Batches of `batch_size` examples in order; chain [`Batches::shuffle`] and
    /// [`Batches::drop_last`] to change that.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    #[track_caller]
    pub fn batches(&self, batch_size: usize) -> Batches<'_, T> {
        assert!(
            batch_size > 0,
            "tapegrad: Dataset::batches: batch_size must be positive"
        );
        Batches {
            dataset: self,
            order: (0..self.len()).collect(),
            batch_size,
            drop_last: false,
            pos: 0,
        }
    }
}

#[track_caller]
fn to_labels<T: Float>(targets: &Tensor<T>) -> Vec<usize> {
    targets
        .as_slice()
        .iter()
        .map(|&t| {
            let v = t.to_f64();
            assert!(
                v >= 0.0 && v.fract() == 0.0 && v.is_finite(),
                "tapegrad: data: target {v} is not a class index"
            );
            v as usize
        })
        .collect()
}

#[track_caller]
fn gather_rows<T: Float>(op: &str, t: &Tensor<T>, indices: &[usize]) -> Tensor<T> {
    let n = t.shape()[0];
    let row = t.numel().checked_div(n).unwrap_or(0);
    let src = t.as_slice();
    let mut out = Vec::with_capacity(indices.len() * row);
    for &i in indices {
        assert!(i < n, "tapegrad: {op}: index {i} out of range for {n} examples");
        out.extend_from_slice(&src[i * row..(i + 1) * row]);
    }
    let mut shape = t.shape().to_vec();
    shape[0] = indices.len();
    Tensor::from_vec(out, &shape)
}

/// One batch: the selected rows of a dataset's features and targets.
#[derive(Clone, Debug)]
pub struct Batch<T: Float = f32> {
    /// Features `[B, ...]`.
    pub features: Tensor<T>,
    /// Targets `[B, ...]`.
    pub targets: Tensor<T>,
}

impl<T: Float> Batch<T> {
    /// The number of examples in the batch.
    pub fn len(&self) -> usize {
        self.features.shape()[0]
    }

    /// `true` for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The targets as class indices.
    ///
    /// # Panics
    /// If a target is negative, fractional or not finite.
    #[track_caller]
    pub fn labels(&self) -> Vec<usize> {
        to_labels(&self.targets)
    }
}

/// An iterator over a dataset's batches, from [`Dataset::batches`]. The last batch is smaller when
/// the batch size does not divide the dataset, unless [`drop_last`](Batches::drop_last) is set.
///
/// ```
/// use tapegrad::{Tensor, data::Dataset};
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let ds = Dataset::new(Tensor::<f32>::from_fn(&[10, 1], |i| i as f32), Tensor::zeros(&[10]));
/// let sizes: Vec<usize> = ds.batches(4).map(|b| b.len()).collect();
/// assert_eq!(sizes, [4, 4, 2]);
/// let first = |seed| ds.batches(4).shuffle(&mut StdRng::seed_from_u64(seed)).next().unwrap().features;
/// assert_eq!(first(1), first(1)); // seeded
/// ```
pub struct Batches<'a, T: Float = f32> {
    dataset: &'a Dataset<T>,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    pos: usize,
}

impl<T: Float> Batches<'_, T> {
    /// Visits the examples in an order drawn from `rng` (seed it for reproducible epochs).
    pub fn shuffle<R: Rng + ?Sized>(mut self, rng: &mut R) -> Self {
        self.order.shuffle(rng);
        self
    }

    /// Leaves out a last batch smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }
}

impl<T: Float> Iterator for Batches<'_, T> {
    type Item = Batch<T>;

    fn next(&mut self) -> Option<Batch<T>> {
        let rest = self.order.len() - self.pos;
        if rest == 0 || (self.drop_last && rest < self.batch_size) {
            return None;
        }
        let end = self.pos + rest.min(self.batch_size);
        let batch = self.dataset.select(&self.order[self.pos..end]);
        self.pos = end;
        Some(batch)
    }
}

fn normal_noise<T: Float, R: Rng + ?Sized>(std: f64, rng: &mut R) -> f64 {
    if std == 0.0 {
        0.0
    } else {
        std * T::sample_standard_normal(rng).to_f64()
    }
}

/// `n` points of `y = 2x + 3 + noise`, `x` uniform in `[-1, 1)`, noise `N(0, noise²)`:
/// features `[n, 1]`, targets `[n, 1]`.
///
/// ```
/// use tapegrad::data;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let ds = data::linear::<f64, _>(5, 0.0, &mut StdRng::seed_from_u64(0));
/// let (x, y) = (ds.features.to_vec(), ds.targets.to_vec());
/// assert!((y[0] - (2.0 * x[0] + 3.0)).abs() < 1e-12);
/// ```
pub fn linear<T: Float, R: Rng + ?Sized>(n: usize, noise: f64, rng: &mut R) -> Dataset<T> {
    let mut xs = Vec::with_capacity(n);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let x = T::sample_uniform(rng, -T::ONE, T::ONE).to_f64();
        xs.push(T::from_f64(x));
        ys.push(T::from_f64(2.0 * x + 3.0 + normal_noise::<T, _>(noise, rng)));
    }
    Dataset::new(Tensor::from_vec(xs, &[n, 1]), Tensor::from_vec(ys, &[n, 1]))
}

fn linspace(start: f64, end: f64, n: usize, endpoint: bool) -> impl Iterator<Item = f64> {
    let steps = if endpoint {
        n.saturating_sub(1).max(1)
    } else {
        n.max(1)
    };
    (0..n).map(move |i| start + (end - start) * i as f64 / steps as f64)
}

fn points<T: Float, R: Rng + ?Sized>(pts: Vec<(f64, f64, usize)>, noise: f64, rng: &mut R) -> Dataset<T> {
    let n = pts.len();
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for (a, b, label) in pts {
        xs.push(T::from_f64(a + normal_noise::<T, _>(noise, rng)));
        xs.push(T::from_f64(b + normal_noise::<T, _>(noise, rng)));
        ys.push(T::from_usize(label));
    }
    Dataset::new(Tensor::from_vec(xs, &[n, 2]), Tensor::from_vec(ys, &[n]))
}

/// Two interleaving half circles (scikit-learn's `make_moons`, unshuffled): `n / 2` points
/// (rounded down) of class 0 on the upper moon, the rest of class 1 on the lower one, plus
/// Gaussian noise of standard deviation `noise`. Features `[n, 2]`, labels `[n]`.
///
/// ```
/// use tapegrad::data;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let ds = data::moons::<f64, _>(4, 0.0, &mut StdRng::seed_from_u64(0));
/// assert_eq!(ds.labels(), vec![0, 0, 1, 1]);
/// assert_eq!(&ds.features.to_vec()[..2], &[1.0, 0.0]); // (cos 0, sin 0)
/// ```
pub fn moons<T: Float, R: Rng + ?Sized>(n: usize, noise: f64, rng: &mut R) -> Dataset<T> {
    let n_out = n / 2;
    let n_in = n - n_out;
    let pi = std::f64::consts::PI;
    let mut pts: Vec<(f64, f64, usize)> = linspace(0.0, pi, n_out, true)
        .map(|t| (t.cos(), t.sin(), 0))
        .collect();
    pts.extend(linspace(0.0, pi, n_in, true).map(|t| (1.0 - t.cos(), 1.0 - t.sin() - 0.5, 1)));
    points(pts, noise, rng)
}

/// A large circle (class 0) containing a smaller one of radius `factor` (class 1), as
/// scikit-learn's `make_circles` (unshuffled), plus Gaussian noise. Features `[n, 2]`, labels `[n]`.
///
/// # Panics
/// Unless `0 ≤ factor < 1`.
///
/// ```
/// use tapegrad::data;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let ds = data::circles::<f64, _>(8, 0.0, 0.5, &mut StdRng::seed_from_u64(0));
/// let f = ds.features.to_vec();
/// assert_eq!(ds.labels()[7], 1);
/// assert!(((f[14] * f[14] + f[15] * f[15]).sqrt() - 0.5).abs() < 1e-12);
/// ```
#[track_caller]
pub fn circles<T: Float, R: Rng + ?Sized>(n: usize, noise: f64, factor: f64, rng: &mut R) -> Dataset<T> {
    assert!(
        (0.0..1.0).contains(&factor),
        "tapegrad: data::circles: factor must be in [0, 1), got {factor}"
    );
    let n_out = n / 2;
    let n_in = n - n_out;
    let tau = std::f64::consts::TAU;
    let mut pts: Vec<(f64, f64, usize)> = linspace(0.0, tau, n_out, false)
        .map(|t| (t.cos(), t.sin(), 0))
        .collect();
    pts.extend(linspace(0.0, tau, n_in, false).map(|t| (factor * t.cos(), factor * t.sin(), 1)));
    points(pts, noise, rng)
}

/// `classes` interleaved spiral arms of `per_class` points each (CS231n's spiral data): arm `k`
/// has radius `r` from 0 to 1 and angle `4k + 4r` plus `N(0, noise²)` (CS231n uses 0.2).
/// Features `[per_class · classes, 2]`, labels `[per_class · classes]`, class by class.
///
/// ```
/// use tapegrad::data;
/// use tapegrad::rand::{SeedableRng, rngs::StdRng};
/// let ds = data::spirals::<f32, _>(50, 3, 0.2, &mut StdRng::seed_from_u64(0));
/// assert_eq!(ds.len(), 150);
/// assert_eq!(ds.labels()[149], 2);
/// ```
pub fn spirals<T: Float, R: Rng + ?Sized>(
    per_class: usize,
    classes: usize,
    noise: f64,
    rng: &mut R,
) -> Dataset<T> {
    let n = per_class * classes;
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for k in 0..classes {
        for r in linspace(0.0, 1.0, per_class, true) {
            let t = 4.0 * (k as f64 + r) + normal_noise::<T, _>(noise, rng);
            xs.push(T::from_f64(r * t.sin()));
            xs.push(T::from_f64(r * t.cos()));
            ys.push(T::from_usize(k));
        }
    }
    Dataset::new(Tensor::from_vec(xs, &[n, 2]), Tensor::from_vec(ys, &[n]))
}

/// The XOR truth table: features `[4, 2]` (00, 01, 10, 11), labels `[4]` (0, 1, 1, 0).
///
/// ```
/// let ds = tapegrad::data::xor::<f32>();
/// assert_eq!(ds.labels(), vec![0, 1, 1, 0]);
/// ```
pub fn xor<T: Float>() -> Dataset<T> {
    let f = |v: &[f64]| v.iter().map(|&x| T::from_f64(x)).collect();
    Dataset::new(
        Tensor::from_vec(f(&[0., 0., 0., 1., 1., 0., 1., 1.]), &[4, 2]),
        Tensor::from_vec(f(&[0., 1., 1., 0.]), &[4]),
    )
}
