//! Gradient hooks, as PyTorch's `Tensor.register_hook`: functions run on a var's (or a
//! parameter's) gradient during backward, which may inspect it or return a replacement.
//!
//! A var's hooks live in a side map of its tape, a parameter's beside its value; nodes carry
//! nothing. Backward looks once per pass whether any var hook exists (and a process-wide count
//! of parameter hooks), so a pass without hooks runs the same loop as before.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::param::ParamRef;
use crate::{Float, Param, Tape, Tensor, Var};

/// A stored hook: called with the gradient, returns `None` to keep it or a replacement.
pub(crate) type HookFn<T> = Arc<dyn for<'a> Fn(Var<'a, T>) -> Option<Var<'a, T>> + Send + Sync>;

/// Hooks in registration order, each with the key its handle removes it by.
pub(crate) type HookList<T> = Vec<(u64, HookFn<T>)>;

static NEXT_HOOK_KEY: AtomicU64 = AtomicU64::new(0);

/// How many hooks are registered on parameters in the whole process: while 0, backward does not
/// look at its parameters' hook lists at all.
pub(crate) static PARAM_HOOKS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn next_key() -> u64 {
    NEXT_HOOK_KEY.fetch_add(1, Ordering::Relaxed)
}

/// The hooks of a tape's vars, by node id, each list in registration order.
pub(crate) struct VarHooks<T: Float> {
    map: RefCell<BTreeMap<u32, HookList<T>>>,
}

impl<T: Float> Default for VarHooks<T> {
    fn default() -> Self {
        VarHooks {
            map: RefCell::new(BTreeMap::new()),
        }
    }
}

impl<T: Float> VarHooks<T> {
    pub(crate) fn clear(&mut self) {
        self.map.get_mut().clear();
    }

    /// Whether no var of the tape has a hook: backward's one check.
    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    /// The ids of the hooked nodes below `end`, highest first (the reverse loop's order).
    pub(crate) fn ids_below(&self, end: usize) -> Vec<u32> {
        let end = u32::try_from(end).unwrap_or(u32::MAX);
        self.map.borrow().range(..end).rev().map(|(&id, _)| id).collect()
    }

    /// Node `id`'s hooks (cloned out, so that a hook may register or remove hooks).
    pub(crate) fn of(&self, id: u32) -> Vec<HookFn<T>> {
        self.map
            .borrow()
            .get(&id)
            .map(|hooks| hooks.iter().map(|(_, h)| Arc::clone(h)).collect())
            .unwrap_or_default()
    }

    fn remove(&self, id: u32, key: u64) -> bool {
        let mut map = self.map.borrow_mut();
        let Some(hooks) = map.get_mut(&id) else {
            return false;
        };
        let before = hooks.len();
        hooks.retain(|(k, _)| *k != key);
        let removed = hooks.len() < before;
        if hooks.is_empty() {
            map.remove(&id);
        }
        removed
    }
}

/// The handle of a var's gradient hook, from [`Var::register_hook`]: as PyTorch's
/// `RemovableHandle`, [`remove`](HookHandle::remove) unregisters the hook and dropping the handle
/// keeps it. It borrows the var's tape (a parameter's hook has a [`ParamHookHandle`]).
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let x = tape.var(2.0);
/// let handle = x.register_hook(|g| Some(g * 0.0));
/// assert_eq!((x * x).backward()[x].item(), 0.0);
/// drop(handle); // the hook stays
/// assert_eq!((x * x).backward()[x].item(), 0.0);
/// ```
pub struct HookHandle<'t, T: Float = f32> {
    tape: &'t Tape<T>,
    id: u32,
    key: u64,
}

impl<T: Float> HookHandle<'_, T> {
    /// Unregisters the hook; `true` if it was still registered.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(1.0);
    /// let handle = x.register_hook(|g| Some(g * 2.0));
    /// assert_eq!((x * 3.0).backward()[x].item(), 6.0);
    /// assert!(handle.remove());
    /// assert_eq!((x * 3.0).backward()[x].item(), 3.0);
    /// ```
    pub fn remove(self) -> bool {
        self.tape.hooks.remove(self.id, self.key)
    }
}

impl<T: Float> std::fmt::Debug for HookHandle<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookHandle(var {}, hook {})", self.id, self.key)
    }
}

/// The handle of a parameter's gradient hook, from [`Param::register_hook`]: as PyTorch's
/// `RemovableHandle`, [`remove`](ParamHookHandle::remove) unregisters the hook and dropping the
/// handle keeps it. It holds the parameter weakly (it does not keep it alive) and is
/// `Send + Sync`, so it can live in a model's struct.
///
/// ```
/// use tapegrad::{Param, Tape, Tensor};
/// let w = Param::new(Tensor::<f64>::scalar(3.0));
/// let handle = w.register_hook(|g| Some(g * 0.0));
/// let tape = Tape::new();
/// assert_eq!((tape.param(&w) * 2.0).backward().param(&w).unwrap().item(), 0.0);
/// assert!(handle.remove());
/// let tape = Tape::new();
/// assert_eq!((tape.param(&w) * 2.0).backward().param(&w).unwrap().item(), 2.0);
/// ```
pub struct ParamHookHandle<T: Float = f32> {
    param: ParamRef<T>,
    key: u64,
}

impl<T: Float> ParamHookHandle<T> {
    /// Unregisters the hook; `true` if it was still registered (`false` if the parameter is
    /// gone or the hook was already removed).
    ///
    /// ```
    /// use tapegrad::{Param, Tensor};
    /// let w = Param::new(Tensor::<f32>::scalar(1.0));
    /// let handle = w.register_hook(|g| Some(g * 2.0));
    /// drop(w);
    /// assert!(!handle.remove()); // the parameter is gone, and its hooks with it
    /// ```
    pub fn remove(self) -> bool {
        self.param.upgrade().is_some_and(|p| p.remove_hook(self.key))
    }
}

impl<T: Float> std::fmt::Debug for ParamHookHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParamHookHandle(hook {})", self.key)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Registers `hook` to run on this var's gradient during backward, as PyTorch's
    /// `Tensor.register_hook`: once the gradient is complete (every use of the var has
    /// contributed) and before it flows on to the var's inputs, the hook gets it and may return
    /// a replacement of the same shape (`Some(new)`) or keep it (`None`). Several hooks on one
    /// var run in registration order, each on the previous one's result, once per backward pass
    /// that reaches the var: every `backward`, every `grad`, and the later passes that
    /// differentiate a recorded gradient through this var (as PyTorch's hooks run in double
    /// backward; remove the hook first if it should not). [`Gradients`](crate::Gradients) then
    /// holds the final gradient for this var. A var that receives no gradient (the output does
    /// not depend on it) does not run its hooks.
    ///
    /// The hook gets the gradient as a [`Var`], so the same hook serves both passes:
    /// - in [`backward`](Var::backward), a constant on a scratch tape of its own (compute with
    ///   it and with constants put on `g.tape()`; vars of your tape cannot be combined with it);
    /// - in the recorded [`grad`](Var::grad), the differentiable gradient on this tape: what
    ///   the hook computes is recorded and differentiated by later passes, as PyTorch runs hooks
    ///   in `create_graph` mode.
    ///
    /// Hooks are `'static + Send + Sync` (share state through `Arc`); they belong to the tape
    /// and go with [`Tape::reset`]. Remove one earlier with the returned [`HookHandle`].
    ///
    /// # Panics
    /// If this var does not require a gradient (a constant, or computed under `no_grad`), as
    /// PyTorch raises; and during backward, if the hook returns a gradient of another shape or
    /// a var of another tape (the message names this var and both shapes).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let h = x * x;                         // dh/dx = 2x = 6
    /// h.register_hook(|g| Some(g * 10.0));   // the gradient reaching h, times 10
    /// let grads = (h * 2.0).backward();
    /// assert_eq!(grads[h].item(), 20.0);
    /// assert_eq!(grads[x].item(), 120.0);
    /// // The recorded pass runs it too, differentiably.
    /// assert_eq!((h * 2.0).grad(&[x])[0].item(), 120.0);
    /// ```
    #[track_caller]
    pub fn register_hook<F>(self, hook: F) -> HookHandle<'t, T>
    where
        F: for<'a> Fn(Var<'a, T>) -> Option<Var<'a, T>> + Send + Sync + 'static,
    {
        assert!(
            self.requires_grad(),
            "tapegrad: register_hook: var {} does not require a gradient (a constant, or computed \
             under no_grad), so a hook on it would never run",
            self.id
        );
        let key = next_key();
        self.tape
            .hooks
            .map
            .borrow_mut()
            .entry(self.id)
            .or_default()
            .push((key, Arc::new(hook)));
        HookHandle {
            tape: self.tape,
            id: self.id,
            key,
        }
    }
}

impl<T: Float> Param<T> {
    /// Registers `hook` to run on this parameter's gradient in every backward pass of every
    /// tape it is bound to (per-parameter clipping, logging, gradient noise), until removed with
    /// the returned [`ParamHookHandle`]. Clones of the parameter share its hooks.
    ///
    /// In [`backward`](Var::backward) the hook runs once per pass, on the parameter's total
    /// gradient (summed over every binding on the tape), after the pass; its result is what
    /// [`Gradients::param`](crate::Gradients::param) and
    /// [`params`](crate::Gradients::params) (and so optimizers) see. The gradients of the
    /// binding vars (`grads[v]`) stay the pass's own. The hook gets a constant var on a scratch
    /// tape, as [`Var::register_hook`]'s do.
    ///
    /// In the recorded [`grad`](Var::grad), which returns gradients per var, the hook runs on
    /// the differentiable gradient of each var bound to the parameter, as if registered on it
    /// with [`Var::register_hook`] (after that var's own hooks). For a parameter bound once per
    /// tape, as most layers bind theirs, both passes agree.
    ///
    /// Hooks compose in registration order, each on the previous one's result. They are
    /// `'static + Send + Sync`, so a parameter stays `Send + Sync`.
    ///
    /// # Panics
    /// During backward, if a hook returns a gradient of another shape (the message names the
    /// parameter and both shapes).
    ///
    /// ```
    /// use tapegrad::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, -2.0], &[2]));
    /// w.register_hook(|g| Some(g.clamp(-0.5, 0.5))); // per-parameter gradient clipping
    /// let tape = Tape::new();
    /// let loss = (tape.param(&w) * tape.constant(Tensor::from_vec(vec![3.0, 0.1], &[2]))).sum();
    /// assert_eq!(loss.backward().param(&w).unwrap().to_vec(), vec![0.5, 0.1]);
    /// ```
    pub fn register_hook<F>(&self, hook: F) -> ParamHookHandle<T>
    where
        F: for<'a> Fn(Var<'a, T>) -> Option<Var<'a, T>> + Send + Sync + 'static,
    {
        let key = next_key();
        self.add_hook(key, Arc::new(hook));
        ParamHookHandle {
            param: self.downgrade(),
            key,
        }
    }
}

/// Describes whose hook it is, for messages: `var 7 ("h")` or `parameter 3`.
pub(crate) enum Owner {
    Var(u32, Option<String>),
    Param(u64),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Var(id, None) => write!(f, "var {id}"),
            Owner::Var(id, Some(name)) => write!(f, "var {id} ({name:?})"),
            Owner::Param(id) => write!(f, "parameter {id}"),
        }
    }
}

/// Checks a hook's result against the gradient it was given.
#[track_caller]
fn check_result<T: Float>(owner: &Owner, n: usize, tape: &Tape<T>, out: &Var<'_, T>, shape: &[usize]) {
    assert!(
        std::ptr::eq(out.tape, tape),
        "tapegrad: gradient hook {n} of {owner} returned a var of another tape than the gradient \
         it was given; compute the replacement from that gradient (and constants on its tape)"
    );
    let got = out.shape();
    assert!(
        got.as_slice() == shape,
        "tapegrad: gradient hook {n} of {owner} returned a gradient of shape {got:?}, but the \
         gradient of {owner} has shape {shape:?}; return one of the same shape, or None to keep it"
    );
}

/// Runs `hooks` on an eager gradient, each on a scratch tape (with the user tape's anomaly
/// setting), and returns the final gradient.
pub(crate) fn run_eager<T: Float>(
    hooks: &[HookFn<T>],
    mut g: Tensor<T>,
    owner: &Owner,
    anomaly: bool,
) -> Tensor<T> {
    for (n, hook) in hooks.iter().enumerate() {
        let scratch = Tape::<T>::new();
        scratch.set_anomaly_detection(anomaly);
        let out = hook(scratch.constant(g.clone()));
        if let Some(out) = out {
            check_result(owner, n, &scratch, &out, g.shape());
            g = out.value();
        }
    }
    g
}

/// Runs `hooks` on a recorded gradient (a var of the tape being differentiated).
pub(crate) fn run_recorded<'t, T: Float>(
    hooks: &[HookFn<T>],
    mut g: Var<'t, T>,
    owner: &Owner,
) -> Var<'t, T> {
    for (n, hook) in hooks.iter().enumerate() {
        if let Some(out) = hook(g) {
            check_result(owner, n, g.tape, &out, &g.shape());
            g = out;
        }
    }
    g
}
