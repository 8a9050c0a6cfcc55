//! [`Tensor`]: plain n-dimensional data (a shape and contiguous row-major storage) and its eager
//! kernels. A tensor knows nothing of gradients; the tape records operations on tensors.

mod compare;
mod copy;
mod display;
pub(crate) mod gemm;
mod kernels;
mod parallel;
pub(crate) mod pool;
pub(crate) mod shape;
pub(crate) mod simd;

use std::mem::MaybeUninit;
use std::sync::Arc;

use rand::Rng;
use smallvec::SmallVec;

use crate::{Element, Float};

pub(crate) use copy::{cat, gather as gather_strided, write_copy};
pub(crate) use display::{ElementDisplay, ElementWriter, float_scalar_text, float_writer};
pub use gemm::{num_threads, set_num_threads};
pub(crate) use kernels::{elementwise, matmul_transposed};
pub(crate) use parallel::{Work, elementwise_chunk, for_each_piece, for_each_slab, reduction_threads};
pub use shape::Shape;

/// Element storage: one element inline (no heap; every rank-0 scalar lives here), otherwise a
/// shared buffer so that cloning a tensor (binding a parameter, reading a node's value) is cheap.
/// Writes go through [`Arc::make_mut`]: copy-on-write.
#[derive(Clone)]
enum Storage<T> {
    One(T),
    Many(Arc<[T]>),
}

/// A buffer of `n` zeros (`T::default()`), recycled from the pool when it has one.
fn zeroed_buffer<T: Element>(n: usize) -> Arc<[T]> {
    match pool::take::<T>(n) {
        Some(mut buffer) => {
            Arc::get_mut(&mut buffer)
                .expect("pooled buffers are not shared")
                .fill(T::default());
            buffer
        }
        None => std::iter::repeat_n(T::default(), n).collect(),
    }
}

/// A buffer holding `values`: a recycled one (see [`pool`]) when this thread has one of that
/// length, else a new allocation filled in place.
fn shared_buffer<T: Element>(values: impl ExactSizeIterator<Item = T>) -> Arc<[T]> {
    // Collecting a mapped iterator straight into an `Arc<[T]>` does not vectorise (gelu on 2^20
    // f32 took 10 ms on one thread against 1.3 ms split in two); zeroing first and writing
    // through the slots does.
    let n = values.len();
    let mut buffer = pool::take::<T>(n).unwrap_or_else(|| std::iter::repeat_n(T::default(), n).collect());
    let slots = Arc::get_mut(&mut buffer).expect("pooled buffers are not shared");
    // `for_each` rather than a counting loop, so that elementwise maps still vectorise.
    slots
        .iter_mut()
        .zip(values)
        .for_each(|(slot, value)| *slot = value);
    buffer
}

/// An n-dimensional array in row-major order: of `f32` (the default) or `f64` values, which
/// are differentiable, or of `bool` (masks) or `usize` (indices); see [`Element`].
///
/// Rank-0 tensors are scalars; any one-element tensor is stored inline without a heap allocation,
/// and larger ones share their buffer between clones (copy-on-write).
///
/// ```
/// use tapegrad::Tensor;
/// let t = Tensor::<f64>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.sum_axis(0, false).to_vec(), vec![5., 7., 9.]);
/// println!("{t}"); // [[1. 2. 3.]
///                  //  [4. 5. 6.]]
/// ```
pub struct Tensor<T: Element = f32> {
    shape: Shape,
    data: Storage<T>,
}

impl<T: Element> Tensor<T> {
    /// A tensor of the given shape from row-major values.
    ///
    /// # Panics
    /// If `data.len()` differs from the product of `shape` (see [`Tensor::try_from_vec`]).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let s = Tensor::<f32>::from_vec(vec![2.5], &[]); // rank 0
    /// assert_eq!(s.item(), 2.5);
    /// ```
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Self {
        match Self::try_from_vec(data, shape) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`Tensor::from_vec`], but returns an error instead of panicking on a length mismatch.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert!(Tensor::<f32>::try_from_vec(vec![1.0, 2.0], &[3]).is_err());
    /// ```
    pub fn try_from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self, crate::Error> {
        let Some(expected) = shape::try_numel::<T>(shape) else {
            return Err(crate::Error::ShapeMismatch {
                op: "Tensor::from_vec",
                detail: format!("shape {shape:?} has more elements than memory can address"),
            });
        };
        if data.len() != expected {
            return Err(crate::Error::ShapeMismatch {
                op: "Tensor::from_vec",
                detail: format!(
                    "{} values cannot fill shape {:?}, which holds {}",
                    data.len(),
                    shape,
                    expected
                ),
            });
        }
        Ok(Self::from_parts(Shape::from_slice(shape), data))
    }

    /// A rank-0 tensor holding `value` (also `Tensor::from(value)`).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let s = Tensor::<f64>::scalar(3.0);
    /// assert_eq!((s.shape(), s.item()), (&[][..], 3.0));
    /// ```
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: Shape::new(),
            data: Storage::One(value),
        }
    }

    /// A tensor of the given shape filled with `value`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::full(&[2], 7.0).to_vec(), vec![7.0, 7.0]);
    /// ```
    #[track_caller]
    pub fn full(shape: &[usize], value: T) -> Self {
        Self::full_named("Tensor::full", shape, value)
    }

    /// [`full`](Self::full), its size checked under the name of the public constructor `op`.
    #[track_caller]
    pub(crate) fn full_named(op: &str, shape: &[usize], value: T) -> Self {
        let n = shape::checked_numel::<T>(op, shape);
        let data = if n == 1 {
            Storage::One(value)
        } else if let Some(large) = parallel::full(shape, value) {
            return large;
        } else {
            Storage::Many(shared_buffer(std::iter::repeat_n(value, n)))
        };
        Tensor {
            shape: Shape::from_slice(shape),
            data,
        }
    }

    /// A tensor whose element at flat (row-major) index `i` is `f(i)`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_fn(&[2, 2], |i| i as f32);
    /// assert_eq!(t.to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> T) -> Self {
        Self::from_fn_named("Tensor::from_fn", shape, f)
    }

    /// [`from_fn`](Self::from_fn), its size checked under the name of the public constructor `op`.
    #[track_caller]
    pub(crate) fn from_fn_named(op: &str, shape: &[usize], mut f: impl FnMut(usize) -> T) -> Self {
        let n = shape::checked_numel::<T>(op, shape);
        Self::from_exact_iter(Shape::from_slice(shape), (0..n).map(&mut f))
    }
}

/// Constructors of float tensors.
impl<T: Float> Tensor<T> {
    /// A tensor of zeros.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::zeros(&[2, 3]).sum().item(), 0.0);
    /// ```
    #[track_caller]
    pub fn zeros(shape: &[usize]) -> Self {
        Self::full_named("Tensor::zeros", shape, T::ZERO)
    }

    /// A tensor of ones.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::ones(&[2, 3]).sum().item(), 6.0);
    /// ```
    #[track_caller]
    pub fn ones(shape: &[usize]) -> Self {
        Self::full_named("Tensor::ones", shape, T::ONE)
    }

    /// Samples from the standard normal distribution N(0, 1).
    ///
    /// ```
    /// use tapegrad::{Tensor, rand::{SeedableRng, rngs::StdRng}};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let r = Tensor::<f32>::randn(&[2, 3], &mut rng);
    /// assert_eq!(r.shape(), &[2, 3]);
    /// ```
    #[track_caller]
    pub fn randn<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Self {
        Self::from_fn_named("Tensor::randn", shape, |_| T::sample_standard_normal(rng))
    }

    /// Samples uniformly from `[lo, hi)`.
    ///
    /// ```
    /// use tapegrad::{Tensor, rand::{SeedableRng, rngs::StdRng}};
    /// let mut rng = StdRng::seed_from_u64(0);
    /// let r = Tensor::<f64>::rand_uniform(&[100], -1.0, 1.0, &mut rng);
    /// assert!(r.as_slice().iter().all(|&v| (-1.0..1.0).contains(&v)));
    /// ```
    #[track_caller]
    pub fn rand_uniform<R: Rng + ?Sized>(shape: &[usize], lo: T, hi: T, rng: &mut R) -> Self {
        assert!(
            lo < hi && (hi - lo).is_finite(),
            "tapegrad: Tensor::rand_uniform needs lo < hi with a finite width hi - lo, got lo = {lo}, hi = {hi}"
        );
        Self::from_fn_named("Tensor::rand_uniform", shape, |_| T::sample_uniform(rng, lo, hi))
    }

    /// `n` evenly spaced values from `start` to `end` inclusive (rank 1).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f64>::linspace(0.0, 1.0, 3).to_vec(), vec![0.0, 0.5, 1.0]);
    /// ```
    #[track_caller]
    pub fn linspace(start: T, end: T, n: usize) -> Self {
        shape::checked_numel::<T>("Tensor::linspace", &[n]);
        let step = if n > 1 {
            (end - start) / T::from_usize(n - 1)
        } else {
            T::ZERO
        };
        Self::from_fn(&[n], |i| start + step * T::from_usize(i))
    }
}

impl<T: Element> Tensor<T> {
    /// Builds a tensor, storing one element inline.
    pub(crate) fn from_parts(shape: Shape, data: Vec<T>) -> Self {
        debug_assert_eq!(shape::numel(&shape), data.len());
        let data = if data.len() == 1 {
            Storage::One(data[0])
        } else {
            Storage::Many(Arc::from(data))
        };
        Tensor { shape, data }
    }

    /// Builds a tensor by letting `fill` write every element of a zeroed buffer, allocated once
    /// straight into the shared storage (no copy from a temporary `Vec`).
    pub(crate) fn build(shape: Shape, fill: impl FnOnce(&mut [T])) -> Self {
        let n = shape::numel(&shape);
        if n == 1 {
            let mut one = [T::default()];
            fill(&mut one);
            return Tensor {
                shape,
                data: Storage::One(one[0]),
            };
        }
        let mut data = zeroed_buffer(n);
        fill(Arc::get_mut(&mut data).expect("a freshly allocated buffer is not shared"));
        Tensor {
            shape,
            data: Storage::Many(data),
        }
    }

    /// Builds a tensor whose every element `fill` writes, without zeroing the buffer first: a
    /// GEMM overwrites its output, and zeroing a 1024×1024 one took 0.3–0.45 ms (about 1 % of
    /// W4 on one thread, 2 % on two, where the fill ran on one core while the other waited).
    ///
    /// # Safety
    /// Unless it panics, `fill` must write every element of the slice it is given.
    pub(crate) unsafe fn build_overwritten(shape: Shape, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Self {
        let n = shape::numel(&shape);
        if n == 1 {
            let mut one = [MaybeUninit::uninit()];
            fill(&mut one);
            // SAFETY: `fill` wrote the element (the caller's contract).
            let value = unsafe { one[0].assume_init() };
            return Tensor {
                shape,
                data: Storage::One(value),
            };
        }
        let data = match pool::take::<T>(n) {
            Some(mut buffer) => {
                let slots = Arc::get_mut(&mut buffer).expect("pooled buffers are not shared");
                // SAFETY: `MaybeUninit<T>` has `T`'s layout, the slots start initialised, and
                // `fill` writes initialised values into every one (the caller's contract).
                let slots = unsafe { &mut *(slots as *mut [T] as *mut [MaybeUninit<T>]) };
                fill(slots);
                buffer
            }
            None => {
                let mut buffer = Arc::<[T]>::new_uninit_slice(n);
                fill(Arc::get_mut(&mut buffer).expect("a freshly allocated buffer is not shared"));
                // SAFETY: `fill` wrote every element (the caller's contract).
                unsafe { buffer.assume_init() }
            }
        };
        Tensor {
            shape,
            data: Storage::Many(data),
        }
    }

    /// Builds a tensor from exactly `shape`'s number of values, allocating once (the iterator's
    /// length is known, so the shared buffer is filled in place).
    pub(crate) fn from_exact_iter(shape: Shape, mut values: impl ExactSizeIterator<Item = T>) -> Self {
        debug_assert_eq!(shape::numel(&shape), values.len());
        let data = if values.len() == 1 {
            Storage::One(values.next().unwrap_or_default())
        } else {
            Storage::Many(shared_buffer(values))
        };
        Tensor { shape, data }
    }

    /// The shared buffer, if the tensor has one (more than one element), for recycling.
    pub(crate) fn into_buffer(self) -> Option<Arc<[T]>> {
        match self.data {
            Storage::One(_) => None,
            Storage::Many(buffer) => Some(buffer),
        }
    }

    /// The dimensions, outermost first; empty for a scalar.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions (0 for a scalar).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::zeros(&[2, 3]).rank(), 2);
    /// ```
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements (1 for a scalar).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::zeros(&[2, 3]).numel(), 6);
    /// ```
    pub fn numel(&self) -> usize {
        match &self.data {
            Storage::One(_) => 1,
            Storage::Many(v) => v.len(),
        }
    }

    /// The value of a rank-0 tensor (shape `[]`), or `None`.
    #[inline]
    pub(crate) fn as_rank0(&self) -> Option<T> {
        match self.data {
            Storage::One(x) if self.shape.is_empty() => Some(x),
            _ => None,
        }
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        match &self.data {
            Storage::One(x) => std::slice::from_ref(x),
            Storage::Many(v) => v,
        }
    }

    /// The elements in row-major order, mutably (copies the buffer first if it is shared).
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let mut t = Tensor::<f32>::zeros(&[2]);
    /// let u = t.clone();
    /// t.as_mut_slice()[0] = 1.0;
    /// assert_eq!((t.to_vec(), u.to_vec()), (vec![1.0, 0.0], vec![0.0, 0.0]));
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.data {
            Storage::One(x) => std::slice::from_mut(x),
            Storage::Many(v) => Arc::make_mut(v),
        }
    }

    /// The elements as a new vector.
    pub fn to_vec(&self) -> Vec<T> {
        self.as_slice().to_vec()
    }

    /// The elements as a vector.
    pub fn into_vec(self) -> Vec<T> {
        match self.data {
            Storage::One(x) => vec![x],
            Storage::Many(v) => v.to_vec(),
        }
    }

    /// The single element of a one-element tensor (any shape).
    ///
    /// # Panics
    /// If the tensor has more or fewer than one element.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// assert_eq!(Tensor::<f32>::from_vec(vec![4.0], &[1, 1]).item(), 4.0);
    /// ```
    #[track_caller]
    pub fn item(&self) -> T {
        match &self.data {
            Storage::One(x) => *x,
            Storage::Many(v) => panic!(
                "tapegrad: item() needs a tensor with one element, but shape {:?} has {}",
                self.shape(),
                v.len()
            ),
        }
    }

    /// The element at a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong length or is out of bounds.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]);
    /// assert_eq!(t.get(&[1, 0]), 4.0);
    /// ```
    #[track_caller]
    pub fn get(&self, index: &[usize]) -> T {
        assert!(
            index.len() == self.rank() && index.iter().zip(self.shape()).all(|(i, d)| i < d),
            "tapegrad: index {index:?} is out of bounds for shape {:?}",
            self.shape()
        );
        let flat = index
            .iter()
            .zip(shape::strides(self.shape()))
            .map(|(i, s)| i * s)
            .sum::<usize>();
        self.as_slice()[flat]
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f32>::from_vec(vec![1., 2.], &[2]);
    /// assert_eq!(t.map(|x| x * 10.0).to_vec(), vec![10., 20.]);
    /// ```
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        match &self.data {
            Storage::One(x) => Tensor {
                shape: Shape::from_slice(&self.shape),
                data: Storage::One(f(*x)),
            },
            Storage::Many(v) => {
                Self::from_exact_iter(Shape::from_slice(&self.shape), v.iter().map(|&x| f(x)))
            }
        }
    }
}

impl<T: Float> Tensor<T> {
    /// [`map`](Self::map) for the crate's own elementwise functions: large tensors are split
    /// between threads, from a length that depends on the `work` per element (see [`parallel`]).
    pub(crate) fn map_elementwise(&self, work: Work, f: impl Fn(T) -> T + Sync) -> Self {
        match &self.data {
            Storage::One(x) => Tensor {
                shape: Shape::from_slice(&self.shape),
                data: Storage::One(f(*x)),
            },
            Storage::Many(values) => parallel::map(&self.shape, values, work, &f),
        }
    }

    /// Converts the elements to another float type.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let t = Tensor::<f64>::from_vec(vec![0.5], &[1]);
    /// assert_eq!(t.cast::<f32>().item(), 0.5f32);
    /// ```
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor::from_parts(
            Shape::from_slice(&self.shape),
            self.as_slice().iter().map(|x| U::from_f64(x.to_f64())).collect(),
        )
    }

    /// `true` when every element is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        self.as_slice().iter().all(|x| x.is_finite())
    }

    /// Adds `other` (of the same shape) into `self` in place.
    #[track_caller]
    pub(crate) fn add_assign_same_shape(&mut self, other: &Tensor<T>) {
        debug_assert_eq!(self.shape(), other.shape());
        match (&mut self.data, &other.data) {
            (Storage::One(a), Storage::One(b)) => *a += *b,
            _ => {
                for (a, &b) in self.as_mut_slice().iter_mut().zip(other.as_slice()) {
                    *a += b;
                }
            }
        }
    }
}

impl<T: Element> Clone for Tensor<T> {
    /// O(1): the shape is copied (inline), the buffer shared.
    fn clone(&self) -> Self {
        Tensor {
            // `from_slice` copies `Copy` items with one memcpy; the derived clone goes item by item.
            shape: Shape::from_slice(&self.shape),
            data: self.data.clone(),
        }
    }
}

impl<T: Element> From<T> for Tensor<T> {
    fn from(value: T) -> Self {
        Tensor::scalar(value)
    }
}

impl<T: Element> From<Vec<T>> for Tensor<T> {
    /// A rank-1 tensor.
    fn from(data: Vec<T>) -> Self {
        let n = data.len();
        Tensor::from_parts(SmallVec::from_slice(&[n]), data)
    }
}

impl<T: Element> From<&[T]> for Tensor<T> {
    /// A rank-1 tensor.
    fn from(data: &[T]) -> Self {
        Tensor::from(data.to_vec())
    }
}

impl<T: Element, const N: usize> From<[T; N]> for Tensor<T> {
    /// A rank-1 tensor.
    fn from(data: [T; N]) -> Self {
        Tensor::from(data.to_vec())
    }
}

impl<T: Element> From<&Tensor<T>> for Tensor<T> {
    fn from(t: &Tensor<T>) -> Self {
        t.clone()
    }
}

impl<T: Element> PartialEq for Tensor<T> {
    /// Same shape and the same elements (so NaN ≠ NaN, as for floats).
    fn eq(&self, other: &Self) -> bool {
        self.shape == other.shape && self.as_slice() == other.as_slice()
    }
}
