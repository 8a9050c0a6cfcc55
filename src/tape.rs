//! [`Tape`] and [`Var`]: recording operations in the order they run.
//!
//! The tape is an arena of nodes; a node holds its value, the ids of its inputs (at most two,
//! inline), a `&'static` reference to its op's backward rule and small inline arguments. Recording
//! a node therefore allocates nothing beyond the tape's own vector, and the order of the vector is
//! a topological order, so backward is a plain reverse loop.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ops::{Args, DynOp, Extra, Op, ScalarRule};
use crate::{Float, Param, Tensor};

static NEXT_TAPE_ID: AtomicUsize = AtomicUsize::new(0);

/// What a leaf node is: the three ways a value enters a tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafKind {
    /// From [`Tape::var`]: requires a gradient.
    Input,
    /// From [`Tape::constant`], or any value computed under [`Tape::no_grad`]: no gradient.
    Constant,
    /// From [`Tape::param`]: requires a gradient, which backward also files under the [`Param`].
    Param,
}

/// Where a node's value lives: a rank-0 value inline, others in the tape's tensor list. A
/// struct rather than an enum, so that backward's rank-0 path, which knows its nodes are rank 0,
/// reads its `scalar` field without checking a tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Value<T> {
    /// The value when it is rank 0; zero otherwise.
    pub(crate) scalar: T,
    /// The index in the tape's tensor list; [`Value::INLINE`] when the value is rank 0.
    pub(crate) stored: u32,
}

/// A [`Value`] taken apart, to match on.
pub(crate) enum ValueKind<T> {
    Scalar(T),
    Stored(u32),
}

impl<T: Float> Value<T> {
    pub(crate) const INLINE: u32 = u32::MAX;

    pub(crate) fn rank0(x: T) -> Self {
        Value {
            scalar: x,
            stored: Self::INLINE,
        }
    }

    /// The value at `index` in the tensor list (`index < u32::MAX`).
    fn stored_at(index: u32) -> Self {
        debug_assert!(index != Self::INLINE);
        Value {
            scalar: T::ZERO,
            stored: index,
        }
    }

    /// Whether the value is rank 0 (stored inline).
    #[inline(always)]
    pub(crate) fn is_scalar(self) -> bool {
        self.stored == Self::INLINE
    }

    #[inline(always)]
    pub(crate) fn kind(self) -> ValueKind<T> {
        if self.is_scalar() {
            ValueKind::Scalar(self.scalar)
        } else {
            ValueKind::Stored(self.stored)
        }
    }
}

/// One recorded value and how it was computed: 32 bytes in f64 (28 in f32), so that a scalar
/// network's tape, written once and read once per step, stays small. `Copy`, with no heap data of
/// its own, so that clearing a tape of millions of scalar nodes costs nothing. Its op is found
/// through [`Nodes::op`].
#[derive(Clone, Copy)]
pub(crate) struct Node<T: Float> {
    /// The value when it is rank 0; zero otherwise (see [`Value`]).
    pub(crate) scalar: T,
    /// The value's index in the tape's tensor list; [`Value::INLINE`] when rank 0.
    stored: u32,
    /// This node's entry in [`Nodes::ops`] (its op and arguments), or [`Node::NO_ENTRY`]: for
    /// leaves, and for nodes with an inline rule, whose op is the rule's and has no arguments.
    op_entry: u32,
    pub(crate) inputs: [u32; 2],
    /// The op's inline rank-0 rule, if it has one; set by the rank-0 forward path only, so a
    /// node with an inline rule has rank-0 inputs and output.
    pub(crate) rule: ScalarRule,
    /// Whether each input requires a gradient, copied at record time (nodes never change) so that
    /// backward's rank-0 path need not look at the inputs' nodes.
    pub(crate) needs: [bool; 2],
    pub(crate) arity: u8,
    pub(crate) leaf: LeafKind,
    pub(crate) requires_grad: bool,
}

impl<T: Float> Node<T> {
    const NO_ENTRY: u32 = u32::MAX;
    /// The `arity` of a node with more than two inputs: its `inputs` are then the start and
    /// length of its ids in [`Nodes::many_inputs`] (see [`Nodes::inputs_of`]).
    pub(crate) const MANY: u8 = u8::MAX;

    /// The inputs of a node with at most two; see [`Nodes::inputs_of`] for any node.
    pub(crate) fn inputs(&self) -> &[u32] {
        debug_assert!(self.arity != Self::MANY, "inputs() of a node with many inputs");
        &self.inputs[..(self.arity as usize).min(2)]
    }

    /// Whether the node has more than two inputs.
    pub(crate) fn has_many_inputs(&self) -> bool {
        self.arity == Self::MANY
    }

    pub(crate) fn value(&self) -> Value<T> {
        Value {
            scalar: self.scalar,
            stored: self.stored,
        }
    }
}

/// The recorded nodes, and the ops of those that need more than their inline rule: a tensor op's
/// `&dyn DynOp` and arguments take 32 bytes, as much as a whole node, so they are kept aside.
pub(crate) struct Nodes<T: Float> {
    /// The `len` recorded nodes, then filler up to the list's length: appending a node is then a
    /// bounds-checked store. `Vec::push` may call its growth function between an op's arithmetic
    /// and the store of the result, which kept every result on the stack (removing that round trip
    /// made a W1 step 10 % faster).
    list: Vec<Node<T>>,
    len: usize,
    /// The op and arguments of every node recorded with an op entry, in tape order.
    ops: Vec<(&'static dyn DynOp<T>, Args)>,
    /// The [`Extra`] arguments of the nodes whose `Args` is `Args::Extra(i)`.
    extras: Vec<Extra>,
    /// The input ids of nodes with more than two inputs, one run per node.
    many_inputs: Vec<u32>,
}

impl<T: Float> Nodes<T> {
    /// Room for `nodes` nodes, whatever their ops (pages of the op list that are never written
    /// are never touched).
    fn with_capacity(nodes: usize) -> Self {
        Nodes {
            list: Vec::with_capacity(nodes),
            len: 0,
            ops: Vec::with_capacity(nodes),
            extras: Vec::new(),
            many_inputs: Vec::new(),
        }
    }

    /// Makes room for one more node: call before [`push_reserved`](Nodes::push_reserved).
    #[inline(always)]
    fn reserve_one(&mut self) {
        if self.len == self.list.len() {
            self.grow();
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        // Fill the spare capacity with filler, doubling it first when there is none.
        if self.list.len() == self.list.capacity() {
            self.list.reserve(self.list.len().max(64));
        }
        let filler = Tape::constant_leaf(Value::rank0(T::ZERO));
        self.list.resize(self.list.capacity(), filler);
    }

    /// Appends a node after [`reserve_one`](Nodes::reserve_one).
    #[inline(always)]
    fn push_reserved(&mut self, node: Node<T>) {
        self.list[self.len] = node;
        self.len += 1;
    }

    fn push(&mut self, node: Node<T>) {
        self.reserve_one();
        self.push_reserved(node);
    }

    /// The op that computed `node`; `None` for a leaf.
    pub(crate) fn op(&self, node: &Node<T>) -> Option<&'static dyn DynOp<T>> {
        if node.rule.is_inline() {
            Some(node.rule.op())
        } else {
            self.ops.get(node.op_entry as usize).map(|&(op, _)| op)
        }
    }

    /// The name of the op that computed `node` (a custom op's own, see [`crate::autograd`]);
    /// `None` for a leaf.
    pub(crate) fn op_name(&self, node: &Node<T>) -> Option<&'static str> {
        let op = self.op(node)?;
        Some(
            self.extra(node)
                .and_then(Extra::custom_name)
                .unwrap_or_else(|| op.name()),
        )
    }

    /// The derivative rule's text of the op that computed `node` (a custom op's own).
    pub(crate) fn op_rule(&self, node: &Node<T>) -> Option<&'static str> {
        let op = self.op(node)?;
        Some(
            self.extra(node)
                .and_then(Extra::custom_rule)
                .unwrap_or_else(|| op.rule()),
        )
    }

    /// The arguments of the op that computed `node` (`Args::None` for a leaf).
    pub(crate) fn args(&self, node: &Node<T>) -> Args {
        self.ops
            .get(node.op_entry as usize)
            .map_or(Args::None, |&(_, args)| args)
    }

    /// The [`Extra`] arguments of the op that computed `node`, if it has any.
    pub(crate) fn extra(&self, node: &Node<T>) -> Option<&Extra> {
        match self.args(node) {
            Args::Extra(i) => self.extras.get(i as usize),
            _ => None,
        }
    }

    /// The ids of `node`'s inputs, however many it has.
    pub(crate) fn inputs_of<'a>(&'a self, node: &'a Node<T>) -> &'a [u32] {
        if node.has_many_inputs() {
            let [start, len] = node.inputs;
            &self.many_inputs[start as usize..(start + len) as usize]
        } else {
            node.inputs()
        }
    }

    /// Adds an op entry for the next node; returns its index.
    fn add_op(&mut self, op: &'static dyn DynOp<T>, args: Args) -> u32 {
        let entry = u32::try_from(self.ops.len())
            .ok()
            .filter(|&i| i != Node::<T>::NO_ENTRY)
            .expect("tapegrad: a tape holds fewer than 2^32 - 1 tensor ops");
        self.ops.push((op, args));
        entry
    }

    fn clear(&mut self) {
        self.len = 0;
        self.ops.clear();
        self.extras.clear();
        self.many_inputs.clear();
    }
}

impl<T: Float> std::ops::Deref for Nodes<T> {
    type Target = [Node<T>];
    fn deref(&self) -> &[Node<T>] {
        &self.list[..self.len]
    }
}

/// A recording of operations on [`Var`]s, for reverse-mode differentiation.
///
/// Create one per forward pass (or [`reset`](Tape::reset) one to keep its allocations), put values
/// on it with [`var`](Tape::var), [`constant`](Tape::constant) and [`param`](Tape::param), compute
/// with the resulting vars, then call [`Var::backward`].
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let x = tape.var(3.0);
/// let y = x * x + 2.0 * x;          // y = x² + 2x
/// let grads = y.backward();
/// assert_eq!(grads[x].item(), 8.0); // dy/dx = 2x + 2
/// ```
pub struct Tape<T: Float = f32> {
    id: usize,
    pub(crate) nodes: RefCell<Nodes<T>>,
    /// The values of nodes that are not rank 0, indexed by [`Value::stored_at`].
    pub(crate) tensors: RefCell<Vec<Tensor<T>>>,
    pub(crate) params: RefCell<Vec<(u32, Param<T>)>>,
    /// Display names of the few named nodes, kept aside so that nodes stay small.
    names: RefCell<std::collections::HashMap<u32, String>>,
    recording: Cell<bool>,
    /// `recording` and anomaly detection off: the one flag the recording paths test, so that
    /// anomaly detection costs nothing when it is off (W1, W3 and W5 did not move).
    plain: Cell<bool>,
    /// The gradient buffer of the last dropped [`Gradients`](crate::Gradients), kept for the
    /// next backward pass: a fresh multi-megabyte buffer would be page-faulted in on every step.
    pub(crate) grad_buffer: crate::backward::GradBuffer<T>,
    /// Anomaly detection's switch and, while on, where each node was recorded (`anomaly.rs`).
    pub(crate) anomaly: crate::anomaly::Anomaly,
    /// The gradient hooks of this tape's vars, beside the nodes (`hooks.rs`).
    pub(crate) hooks: crate::hooks::VarHooks<T>,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty tape with room for `nodes` nodes before it reallocates.
    pub fn with_capacity(nodes: usize) -> Self {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            nodes: RefCell::new(Nodes::with_capacity(nodes)),
            tensors: RefCell::new(Vec::new()),
            params: RefCell::new(Vec::new()),
            names: RefCell::default(),
            recording: Cell::new(true),
            plain: Cell::new(true),
            grad_buffer: Default::default(),
            anomaly: Default::default(),
            hooks: Default::default(),
        }
    }

    /// A leaf that requires a gradient. Accepts anything that converts into a tensor: a
    /// [`Tensor`], a scalar (`tape.var(2.0)`), a `Vec` or an array (rank 1).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var([1.0, 2.0]);
    /// assert_eq!(x.shape(), vec![2]);
    /// ```
    pub fn var(&self, value: impl Into<Tensor<T>>) -> Var<'_, T> {
        self.leaf(value.into(), LeafKind::Input)
    }

    /// Like [`Tape::var`], with a name shown in graph pictures and backward traces.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let w = tape.var_named("w", 0.5);
    /// assert_eq!(w.name().as_deref(), Some("w"));
    /// ```
    pub fn var_named(&self, name: impl Into<String>, value: impl Into<Tensor<T>>) -> Var<'_, T> {
        self.var(value).named(name)
    }

    /// A leaf without a gradient.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let (x, c) = (tape.var(2.0), tape.constant(5.0));
    /// let grads = (x * c).backward();
    /// assert_eq!(grads[x].item(), 5.0);
    /// assert!(grads.wrt(c).is_none());
    /// ```
    pub fn constant(&self, value: impl Into<Tensor<T>>) -> Var<'_, T> {
        self.leaf(value.into(), LeafKind::Constant)
    }

    /// A leaf bound to `param`: backward files its gradient under the parameter too. Binding
    /// the same parameter twice on one tape is allowed; its gradients add up. Bound inside
    /// [`Tape::no_grad`], or [frozen](Param::set_requires_grad), the parameter is a plain
    /// constant (no gradient), like any value there.
    ///
    /// ```
    /// use tapegrad::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::<f64>::scalar(3.0));
    /// let tape = Tape::new();
    /// let loss = tape.param(&w) * tape.param(&w); // w², bound twice
    /// assert_eq!(loss.backward().param(&w).unwrap().item(), 6.0);
    /// ```
    pub fn param(&self, param: &Param<T>) -> Var<'_, T> {
        if !param.requires_grad() {
            return self.leaf(param.value(), LeafKind::Constant);
        }
        let var = self.leaf(param.value(), LeafKind::Param);
        if self.recording.get() {
            self.params.borrow_mut().push((var.id, param.clone()));
        }
        var
    }

    /// Runs `f` without recording: vars computed inside are constants (values only, no inputs,
    /// no gradient), as under PyTorch's `torch.no_grad()`.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let y = tape.no_grad(|| x * 3.0);
    /// assert_eq!(y.item(), 6.0);
    /// assert!(!y.requires_grad());
    /// ```
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a, T: Float>(&'a Tape<T>, bool);
        impl<T: Float> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                self.0.recording.set(self.1);
                self.0.update_plain();
            }
        }
        let _restore = Restore(self, self.recording.replace(false));
        self.update_plain();
        f()
    }

    /// Recomputes [`Tape::plain`] after `recording` or anomaly detection changed.
    pub(crate) fn update_plain(&self) {
        self.plain.set(self.recording.get() && !self.anomaly.is_on());
    }

    /// `false` inside [`Tape::no_grad`].
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    /// The number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// `true` when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every node, keeping the allocations for the next step. Needs `&mut self`, so no
    /// [`Var`] of this tape can still be alive.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let mut tape = Tape::<f32>::new();
    /// for step in 0..3 {
    ///     tape.reset();
    ///     let x = tape.var(step as f32);
    ///     assert_eq!((x * x).backward()[x].item(), 2.0 * step as f32);
    /// }
    /// ```
    pub fn reset(&mut self) {
        // A new identity, so that gradients from before the reset cannot answer for new vars.
        self.id = NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed);
        self.nodes.get_mut().clear();
        crate::tensor::pool::recycle(self.tensors.get_mut().drain(..));
        self.params.get_mut().clear();
        self.names.get_mut().clear();
        self.anomaly.clear();
        self.hooks.clear();
        self.recording.set(true);
        self.update_plain();
    }

    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Stores a value: inline when rank 0, otherwise in the tensor list.
    fn store(&self, value: Tensor<T>) -> Value<T> {
        match value.as_rank0() {
            Some(x) => Value::rank0(x),
            None => {
                let mut tensors = self.tensors.borrow_mut();
                let index = u32::try_from(tensors.len())
                    .ok()
                    .filter(|&i| i != u32::MAX)
                    .expect("tapegrad: a tape holds fewer than 2^32 - 1 tensors");
                tensors.push(value);
                Value::stored_at(index)
            }
        }
    }

    /// Reads a node's value, borrowing it from the tape when it is not rank 0.
    pub(crate) fn value_of(&self, value: Value<T>) -> ValueRef<'_, T> {
        match value.kind() {
            ValueKind::Scalar(x) => ValueRef::Scalar(Tensor::scalar(x)),
            ValueKind::Stored(i) => {
                ValueRef::Stored(std::cell::Ref::map(self.tensors.borrow(), |t| &t[i as usize]))
            }
        }
    }

    /// Node `id` (a copy), with its op (`None` for a leaf) and the op's arguments.
    pub(crate) fn node_with_op(&self, id: usize) -> (Node<T>, Option<&'static dyn DynOp<T>>, Args) {
        let nodes = self.nodes.borrow();
        let node = nodes[id];
        (node, nodes.op(&node), nodes.args(&node))
    }

    /// The ids of node `id`'s inputs and a copy of its extra arguments.
    pub(crate) fn inputs_and_extra(&self, id: usize) -> (Vec<u32>, Option<Extra>) {
        let nodes = self.nodes.borrow();
        let node = &nodes[id];
        (nodes.inputs_of(node).to_vec(), nodes.extra(node).cloned())
    }

    /// The text of node `id`'s arguments, for pictures and traces.
    pub(crate) fn args_text(&self, id: usize) -> String {
        let nodes = self.nodes.borrow();
        let node = &nodes[id];
        match nodes.extra(node) {
            Some(extra) => extra.to_string(),
            None => nodes.args(node).to_string(),
        }
    }

    /// Reads the value of node `id`.
    pub(crate) fn node_value(&self, id: u32) -> ValueRef<'_, T> {
        let value = self.nodes.borrow()[id as usize].value();
        self.value_of(value)
    }

    fn leaf(&self, value: Tensor<T>, leaf: LeafKind) -> Var<'_, T> {
        let requires_grad = leaf != LeafKind::Constant && self.recording.get();
        let value = self.store(value);
        self.push(Node {
            leaf: if requires_grad { leaf } else { LeafKind::Constant },
            requires_grad,
            ..Self::constant_leaf(value)
        })
    }

    /// Records `op` applied to `inputs` (one or two) with its forward result `value`.
    #[track_caller]
    pub(crate) fn record(
        &self,
        op: &'static dyn DynOp<T>,
        args: Args,
        inputs: &[u32],
        value: Tensor<T>,
    ) -> Var<'_, T> {
        self.record_with(op, args, None, inputs, value)
    }

    /// Records `op` applied to any number of `inputs`, with `extra` arguments if it has some
    /// (then `args` must be `Args::None`: the node's `Args` points at the extra arguments).
    #[track_caller]
    pub(crate) fn record_with(
        &self,
        op: &'static dyn DynOp<T>,
        args: Args,
        extra: Option<Extra>,
        inputs: &[u32],
        value: Tensor<T>,
    ) -> Var<'_, T> {
        self.record_node(op, args, extra, inputs, value, inputs.len() > 2)
    }

    /// Records a custom op's node ([`crate::autograd`]): with its inputs in the side list
    /// whatever their number, so that backward always runs its rule through
    /// [`DynOp::vjp_many_tensor`] and [`DynOp::vjp_many_var`].
    #[track_caller]
    pub(crate) fn record_custom(
        &self,
        op: &'static dyn DynOp<T>,
        extra: Extra,
        inputs: &[u32],
        value: Tensor<T>,
    ) -> Var<'_, T> {
        self.record_node(op, Args::None, Some(extra), inputs, value, true)
    }

    #[track_caller]
    fn record_node(
        &self,
        op: &'static dyn DynOp<T>,
        args: Args,
        extra: Option<Extra>,
        inputs: &[u32],
        value: Tensor<T>,
        many: bool,
    ) -> Var<'_, T> {
        if !self.plain.get() {
            if self.anomaly.is_on() {
                let id = self.recording.get().then(|| Self::next_id(&self.nodes.borrow()));
                // A custom op is named by its own name, not by the placeholder op recording it.
                let name = extra
                    .as_ref()
                    .and_then(Extra::custom_name)
                    .unwrap_or_else(|| op.name());
                self.anomaly_tensor_op(name, inputs, &value, id);
            }
            if !self.recording.get() {
                return self.leaf(value, LeafKind::Constant);
            }
        }
        let value = self.store(value);
        let mut nodes = self.nodes.borrow_mut();
        let args = match extra {
            Some(extra) => {
                debug_assert!(
                    args == Args::None,
                    "{} has both inline and extra arguments",
                    op.name()
                );
                let index = u32::try_from(nodes.extras.len())
                    .expect("tapegrad: at most 2^32 ops with list arguments");
                nodes.extras.push(extra);
                Args::Extra(index)
            }
            None => args,
        };
        let mut needs = [false; 2];
        let mut ids = [0; 2];
        let arity = if !many {
            for (need, &i) in needs.iter_mut().zip(inputs) {
                *need = nodes[i as usize].requires_grad;
            }
            ids[..inputs.len()].copy_from_slice(inputs);
            inputs.len() as u8
        } else {
            needs[0] = inputs.iter().any(|&i| nodes[i as usize].requires_grad);
            let start = u32::try_from(nodes.many_inputs.len())
                .expect("tapegrad: at most 2^32 inputs of ops with many inputs");
            nodes.many_inputs.extend_from_slice(inputs);
            ids = [start, inputs.len() as u32];
            Node::<T>::MANY
        };
        let requires_grad = needs[0] || needs[1];
        let id = Self::next_id(&nodes);
        let op_entry = nodes.add_op(op, args);
        nodes.push(Node {
            scalar: value.scalar,
            stored: value.stored,
            op_entry,
            rule: ScalarRule::Dynamic,
            needs,
            inputs: ids,
            arity,
            leaf: LeafKind::Constant,
            requires_grad,
        });
        Var { tape: self, id }
    }

    /// Records `op` on rank-0 inputs in one step, computing the value with `f` on plain numbers:
    /// the forward fast path of scalar graphs. Returns `None` (recording nothing) unless every
    /// input is rank 0. A unary op's `f` gets its input twice.
    #[inline(always)]
    #[track_caller]
    pub(crate) fn record_scalar<O: Op<T>>(
        &self,
        op: &'static O,
        args: Args,
        inputs: &[u32],
        f: impl FnOnce(T, T) -> T,
    ) -> Option<Var<'_, T>> {
        let mut nodes = self.nodes.borrow_mut();
        // Grow first, so that no values are live across the (rare) reallocation call.
        nodes.reserve_one();
        // Borrow the inputs rather than copy them: copying two whole nodes cost a `memcpy` call
        // each, a fifth of the time of a micrograd-style network.
        let (a, b) = (
            &nodes[inputs[0] as usize],
            &nodes[inputs[inputs.len() - 1] as usize],
        );
        if !(a.value().is_scalar() & b.value().is_scalar()) {
            return None;
        }
        let (x, y) = (a.scalar, b.scalar);
        let binary = inputs.len() > 1;
        // `&`, not `&&`: no branches.
        let needs = [a.requires_grad, binary & b.requires_grad];
        let value = Value::rank0(f(x, y));
        let id = Self::next_id(&nodes);
        if !self.plain.get() {
            return Some(self.record_scalar_unplain(op, args, inputs, &mut nodes, value, needs, id));
        }
        Self::push_scalar(&mut nodes, op, args, inputs, value, needs);
        Some(Var { tape: self, id })
    }

    /// The rank-0 node of `op`, into the room [`Nodes::reserve_one`] made.
    #[inline(always)]
    fn push_scalar<O: Op<T>>(
        nodes: &mut Nodes<T>,
        op: &'static O,
        args: Args,
        inputs: &[u32],
        value: Value<T>,
        needs: [bool; 2],
    ) {
        // A unary op's node names its input twice (`arity` says how many count), so that
        // backward's rank-0 path reads both without a branch.
        let ids = [inputs[0], inputs[inputs.len() - 1]];
        let rule = ScalarRule::of::<T, O>();
        // Inline rules' ops take no arguments; other ops keep theirs in an op entry.
        let op_entry = if rule.is_inline() {
            debug_assert!(
                args == Args::None,
                "{} has an inline rule and arguments",
                op.name()
            );
            Node::<T>::NO_ENTRY
        } else {
            nodes.add_op(op, args)
        };
        nodes.push_reserved(Node {
            scalar: value.scalar,
            stored: value.stored,
            op_entry,
            rule,
            needs,
            inputs: ids,
            arity: inputs.len() as u8,
            leaf: LeafKind::Constant,
            requires_grad: needs[0] | needs[1],
        });
    }

    /// [`record_scalar`](Tape::record_scalar) when not recording or with anomaly detection on:
    /// out of line, so that the recording path tests one flag and nothing more.
    #[cold]
    #[inline(never)]
    #[track_caller]
    #[allow(clippy::too_many_arguments)]
    fn record_scalar_unplain<O: Op<T>>(
        &self,
        op: &'static O,
        args: Args,
        inputs: &[u32],
        nodes: &mut Nodes<T>,
        value: Value<T>,
        needs: [bool; 2],
        id: u32,
    ) -> Var<'_, T> {
        let recording = self.recording.get();
        if recording {
            Self::push_scalar(nodes, op, args, inputs, value, needs);
        } else {
            nodes.push_reserved(Self::constant_leaf(value));
        }
        if self.anomaly.is_on() {
            self.anomaly_scalar_op(nodes, op.name(), inputs, id, recording);
        }
        Var { tape: self, id }
    }

    /// A leaf without a gradient: a constant, or a value computed under [`Tape::no_grad`].
    fn constant_leaf(value: Value<T>) -> Node<T> {
        Node {
            scalar: value.scalar,
            stored: value.stored,
            op_entry: Node::<T>::NO_ENTRY,
            rule: ScalarRule::Dynamic,
            needs: [false; 2],
            inputs: [0; 2],
            arity: 0,
            leaf: LeafKind::Constant,
            requires_grad: false,
        }
    }

    fn push(&self, node: Node<T>) -> Var<'_, T> {
        let mut nodes = self.nodes.borrow_mut();
        let id = Self::next_id(&nodes);
        nodes.push(node);
        Var { tape: self, id }
    }

    fn next_id(nodes: &[Node<T>]) -> u32 {
        u32::try_from(nodes.len()).expect("tapegrad: a tape holds at most 2^32 nodes")
    }
}

/// A node's value, borrowed: a rank-0 value rebuilt on the stack, or a borrow of the tape's
/// tensor list. Drop it before recording (recording borrows the tape mutably).
pub(crate) enum ValueRef<'a, T: Float> {
    Scalar(Tensor<T>),
    Stored(std::cell::Ref<'a, Tensor<T>>),
}

impl<T: Float> std::ops::Deref for ValueRef<'_, T> {
    type Target = Tensor<T>;
    fn deref(&self) -> &Tensor<T> {
        match self {
            ValueRef::Scalar(t) => t,
            ValueRef::Stored(t) => t,
        }
    }
}

/// A value recorded on a [`Tape`]: a cheap `Copy` handle (tape reference + node id).
///
/// Every operation on vars records a node; operators work with vars and with scalars on either
/// side (`x + 1.0`, `2.0 * x`). Vars of two different tapes cannot be combined.
///
/// ```
/// use tapegrad::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let a = tape.var(Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]));
/// let b = tape.var(Tensor::from_vec(vec![0.5, -1.], &[2, 1]));
/// let loss = a.matmul(&b).tanh().sum();
/// let grads = loss.backward();
/// assert_eq!(grads[a].shape(), &[2, 2]);
/// ```
///
/// # Constants in code generic over the element type
///
/// `x * 0.5` works for `Var<f32>` and `Var<f64>`, but in a function generic over `T: Float`
/// the literal has no type to become, and the compiler says "cannot multiply `Var<'_, T>` by
/// `{float}`". Convert the constant: `x * T::from_f64(0.5)`.
///
/// ```
/// use tapegrad::{Float, Tape, Var};
/// fn half_square<'t, T: Float>(x: Var<'t, T>) -> Var<'t, T> {
///     x * x * T::from_f64(0.5)
/// }
/// let tape = Tape::<f32>::new();
/// assert_eq!(half_square(tape.var(3.0)).item(), 4.5);
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float = f32> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: u32,
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this var lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's position on its tape (0 for the first recorded value).
    pub fn id(&self) -> usize {
        self.id as usize
    }

    /// The value (a cheap copy-on-write clone).
    pub fn value(&self) -> Tensor<T> {
        self.tape.node_value(self.id).clone()
    }

    /// The shape of the value.
    pub fn shape(&self) -> Vec<usize> {
        self.tape.node_value(self.id).shape().to_vec()
    }

    /// The single element of a one-element value.
    ///
    /// # Panics
    /// If the value has more or fewer than one element.
    #[track_caller]
    pub fn item(&self) -> T {
        self.tape.node_value(self.id).item()
    }

    /// `true` when gradients flow to this var (it depends on a var or param, outside `no_grad`).
    pub fn requires_grad(&self) -> bool {
        self.tape.nodes.borrow()[self.id as usize].requires_grad
    }

    /// The name given with [`Tape::var_named`] or [`Var::named`], if any.
    pub fn name(&self) -> Option<String> {
        self.tape.names.borrow().get(&self.id).cloned()
    }

    /// Names this var for graph pictures and backward traces; returns it for chaining.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let h = (tape.var(1.0) * 2.0).named("h");
    /// assert_eq!(h.name().as_deref(), Some("h"));
    /// ```
    pub fn named(self, name: impl Into<String>) -> Self {
        self.tape.names.borrow_mut().insert(self.id, name.into());
        self
    }

    /// The name of the op that computed this var (`"mul"`, `"matmul"`, ...), `None` for a leaf.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(1.0);
    /// assert_eq!((x.op(), x.exp().op()), (None, Some("exp")));
    /// ```
    pub fn op(&self) -> Option<&'static str> {
        let nodes = self.tape.nodes.borrow();
        nodes.op_name(&nodes[self.id as usize])
    }

    /// The derivative rule of the op that computed this var, in words and formulas.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let y = tape.var(1.0).tanh();
    /// assert!(y.op_rule().unwrap().contains("1 - tanh^2"));
    /// ```
    pub fn op_rule(&self) -> Option<&'static str> {
        let nodes = self.tape.nodes.borrow();
        nodes.op_rule(&nodes[self.id as usize])
    }

    /// The ids of the inputs of the op that computed this var (empty for a leaf).
    pub fn input_ids(&self) -> Vec<usize> {
        let nodes = self.tape.nodes.borrow();
        nodes
            .inputs_of(&nodes[self.id as usize])
            .iter()
            .map(|&i| i as usize)
            .collect()
    }

    /// `true` for a leaf bound to a [`Param`].
    pub fn is_param(&self) -> bool {
        self.tape.nodes.borrow()[self.id as usize].leaf == LeafKind::Param
    }

    /// A constant copy of this var's value: gradients do not flow through it.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = x * x.detach();          // d/dx = x.detach() = 3, not 2x
    /// assert_eq!(y.backward()[x].item(), 3.0);
    /// ```
    pub fn detach(self) -> Var<'t, T> {
        let value = self.value();
        self.tape.constant(value)
    }

    /// Panics unless both vars live on the same tape.
    #[track_caller]
    #[inline(always)]
    pub(crate) fn check_same_tape(self, other: Var<'t, T>, op: &str) {
        if !std::ptr::eq(self.tape, other.tape) {
            different_tapes(op, self.id, other.id);
        }
    }
}

/// The panic of [`Var::check_same_tape`], out of line so that the check costs the caller one
/// comparison (the message's arguments were being prepared on every arithmetic op).
#[cold]
#[inline(never)]
#[track_caller]
fn different_tapes(op: &str, id: u32, other: u32) -> ! {
    panic!(
        "tapegrad: {op}: cannot combine vars from two different tapes \
         (node {id} of one tape with node {other} of another)"
    )
}

impl<T: Float> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.op().unwrap_or("leaf");
        write!(
            f,
            "Var(id={}, op={op}, value={:?})",
            self.id,
            *self.tape.node_value(self.id)
        )
    }
}

/// Reading a recording back: every node as a [`Var`], for pictures, traces and teaching.
impl<T: Float> Tape<T> {
    /// Every recorded node, in tape order, as a var (read its [`op`](Var::op),
    /// [`input_ids`](Var::input_ids), [`value`](Var::value)...).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let _y = x.exp() * x;
    /// let ops: Vec<_> = tape.vars().map(|v| v.op().unwrap_or("leaf")).collect();
    /// assert_eq!(ops, ["leaf", "exp", "mul"]);
    /// ```
    pub fn vars(&self) -> impl Iterator<Item = Var<'_, T>> {
        (0..Self::next_id(&self.nodes.borrow())).map(move |id| Var { tape: self, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_and_resetting_never_shows_filler_nodes() {
        let mut tape = Tape::<f64>::with_capacity(3);
        for round in 0..2 {
            tape.reset();
            let x = tape.var(1.0 + round as f64);
            let mut y = x;
            for _ in 0..200 {
                y = y * 1.0 + 0.0;
            }
            // x, then per step a constant and a node for each of `* 1.0` and `+ 0.0`.
            assert_eq!(tape.len(), 801);
            assert_eq!(tape.vars().count(), 801);
            assert_eq!(y.item(), 1.0 + round as f64);
            assert_eq!(y.backward()[x].item(), 1.0);
        }
    }

    #[test]
    fn nodes_stay_small() {
        // Scalar graphs are memory-bound: every byte of a node is written, read and cleared per
        // step (see ARCHITECTURE.md). Growing a node is a performance regression.
        assert_eq!(std::mem::size_of::<Node<f32>>(), 28);
        assert_eq!(std::mem::size_of::<Node<f64>>(), 32);
    }
}
