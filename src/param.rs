//! [`Param`]: a trainable tensor that lives across tapes (a model's weights).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use crate::hooks::{HookFn, HookList, PARAM_HOOKS};
use crate::{Float, Tensor};

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(0);

/// A map keyed by [`Param::id`]. Ids are distinct counters, not attacker-chosen, so a
/// multiplicative hash replaces SipHash, which was a tenth of the bookkeeping of a step of a
/// network with hundreds of rank-0 parameters.
pub(crate) type ParamMap<V> = HashMap<u64, V, BuildHasherDefault<ParamIdHasher>>;

/// Fibonacci hashing of a [`Param::id`]: the product's high bits, which hash tables use first,
/// depend on every bit of the id.
#[derive(Default)]
pub(crate) struct ParamIdHasher(u64);

impl Hasher for ParamIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A trainable tensor shared across tapes: a cheap-to-clone handle with a stable [`id`](Param::id).
///
/// Each training step binds it to a fresh (or reset) tape with [`Tape::param`](crate::Tape::param);
/// backward collects its gradient in [`Gradients::param`](crate::Gradients::param), and an
/// optimizer updates the value in place. Clones share the same value.
///
/// ```
/// use tapegrad::{Param, Tape, Tensor};
/// let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
/// let tape = Tape::new();
/// let loss = (tape.param(&w) * 3.0).sum();
/// let grads = loss.backward();
/// assert_eq!(grads.param(&w).unwrap().to_vec(), vec![3.0, 3.0]);
/// w.update(|v| *v = v.sub(grads.param(&w).unwrap()));
/// assert_eq!(w.value().to_vec(), vec![-2.0, -1.0]);
/// ```
pub struct Param<T: Float = f32> {
    inner: Arc<Inner<T>>,
}

struct Inner<T: Float> {
    id: u64,
    value: RwLock<Tensor<T>>,
    /// `false` once frozen: bound as a constant, so it gets no gradient and optimizers skip it.
    requires_grad: AtomicBool,
    /// Gradient hooks ([`Param::register_hook`], in `hooks.rs`), in registration order.
    hooks: RwLock<HookList<T>>,
}

impl<T: Float> Drop for Inner<T> {
    fn drop(&mut self) {
        let n = self.hooks.get_mut().map_or(0, |h| h.len());
        if n > 0 {
            PARAM_HOOKS.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// A weak handle of a [`Param`], for hook handles (which must not keep the parameter alive).
pub(crate) struct ParamRef<T: Float>(Weak<Inner<T>>);

impl<T: Float> ParamRef<T> {
    pub(crate) fn upgrade(&self) -> Option<Param<T>> {
        self.0.upgrade().map(|inner| Param { inner })
    }
}

impl<T: Float> Clone for Param<T> {
    fn clone(&self) -> Self {
        Param {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Float> Param<T> {
    /// A new parameter with a fresh id.
    pub fn new(value: Tensor<T>) -> Self {
        Param {
            inner: Arc::new(Inner {
                id: NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed),
                value: RwLock::new(value),
                requires_grad: AtomicBool::new(true),
                hooks: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The stable identity of this parameter (shared by its clones, unique in the process).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The current value (a cheap copy-on-write clone).
    pub fn value(&self) -> Tensor<T> {
        self.read().clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> Vec<usize> {
        self.read().shape().to_vec()
    }

    /// Replaces the value.
    ///
    /// # Panics
    /// If the new value has another shape than the current one.
    #[track_caller]
    pub fn set_value(&self, value: Tensor<T>) {
        let mut current = self.write();
        assert!(
            current.shape() == value.shape(),
            "tapegrad: Param::set_value: new shape {:?} differs from the parameter's shape {:?}",
            value.shape(),
            current.shape()
        );
        *current = value;
    }

    /// Updates the value in place.
    ///
    /// # Panics
    /// If `f` changes the shape of the value.
    #[track_caller]
    pub fn update(&self, f: impl FnOnce(&mut Tensor<T>)) {
        let mut current = self.write();
        let shape = current.shape().to_vec();
        f(&mut current);
        assert!(
            current.shape() == shape.as_slice(),
            "tapegrad: Param::update changed the shape from {shape:?} to {:?}",
            current.shape()
        );
    }

    /// `false` once [frozen](Param::set_requires_grad): [`Tape::param`](crate::Tape::param)
    /// then binds it as a constant, so backward gives it no gradient and optimizers leave it
    /// as it is. `true` for a new parameter.
    ///
    /// ```
    /// use tapegrad::{Param, Tensor};
    /// assert!(Param::new(Tensor::<f32>::zeros(&[2])).requires_grad());
    /// ```
    pub fn requires_grad(&self) -> bool {
        self.inner.requires_grad.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter, for every clone of the handle
    /// (PyTorch's `requires_grad_`). Takes effect at the next [`Tape::param`](crate::Tape::param).
    ///
    /// ```
    /// use tapegrad::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::<f64>::scalar(3.0));
    /// w.set_requires_grad(false);
    /// let tape = Tape::new();
    /// let grads = (tape.param(&w) * tape.var(2.0)).backward();
    /// assert!(grads.param(&w).is_none());
    /// ```
    pub fn set_requires_grad(&self, requires_grad: bool) {
        self.inner.requires_grad.store(requires_grad, Ordering::Relaxed);
    }

    /// `true` when both handles refer to the same parameter.
    pub fn same_as(&self, other: &Param<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Adds a gradient hook (see [`Param::register_hook`]).
    pub(crate) fn add_hook(&self, key: u64, hook: HookFn<T>) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, hook));
        PARAM_HOOKS.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the hook registered under `key`; `true` if it was there.
    pub(crate) fn remove_hook(&self, key: u64) -> bool {
        let mut hooks = self.inner.hooks.write().unwrap_or_else(|e| e.into_inner());
        let before = hooks.len();
        hooks.retain(|(k, _)| *k != key);
        let removed = before - hooks.len();
        PARAM_HOOKS.fetch_sub(removed, Ordering::Relaxed);
        removed > 0
    }

    /// This parameter's hooks, cloned out (so that a hook may add or remove hooks).
    pub(crate) fn hooks(&self) -> Vec<HookFn<T>> {
        let hooks = self.inner.hooks.read().unwrap_or_else(|e| e.into_inner());
        hooks.iter().map(|(_, h)| Arc::clone(h)).collect()
    }

    pub(crate) fn downgrade(&self) -> ParamRef<T> {
        ParamRef(Arc::downgrade(&self.inner))
    }

    // A panic while a value is borrowed cannot leave a tensor half-written (every write is a
    // whole assignment or an elementwise loop), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, Tensor<T>> {
        self.inner.value.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tensor<T>> {
        self.inner.value.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Float> std::fmt::Debug for Param<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param(id={}, {:?})", self.id(), *self.read())
    }
}
