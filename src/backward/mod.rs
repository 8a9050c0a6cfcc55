//! The reverse pass: one loop over the tape from the output back to the first node, applying
//! each op's vector-Jacobian product. No recursion and no graph search: the tape's order is
//! already topological, so a chain of ten million nodes needs no stack.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};

mod accumulate;
mod slots;

use crate::ops::{Args, DynOp, Extra, Vjp, VjpMany};
use crate::param::ParamMap;
use crate::tape::{Node, Value, ValueKind};
use crate::{Float, Param, Tensor, Var};
use slots::{Slot, Slots};

/// A one-slot pool for backward's per-node vector, shared by a tape and its gradients: a fresh
/// multi-megabyte buffer would be page-faulted in on every step.
pub(crate) type GradBuffer<T> = Arc<Mutex<(Slots<T>, Vec<Tensor<T>>)>>;

/// The gradients from one backward pass: by var (`grads[x]`, [`wrt`](Gradients::wrt)) and by
/// [`Param`] ([`param`](Gradients::param)).
///
/// Gradients of intermediate vars are kept too (handy for teaching and debugging). A var that
/// does not require a gradient, or that the output does not depend on, has none.
///
/// ```
/// use tapegrad::Tape;
/// let tape = Tape::<f64>::new();
/// let x = tape.var(3.0);
/// let h = x * x;
/// let y = h * 2.0;
/// let grads = y.backward();
/// assert_eq!(grads[h].item(), 2.0);
/// assert_eq!(grads[x].item(), 12.0);
/// ```
pub struct Gradients<T: Float = f32> {
    tape_id: usize,
    slots: Slots<T>,
    tensors: Vec<Tensor<T>>,
    /// Rank-0 gradients are kept as plain numbers; the first `wrt` on one builds its tensor here.
    scalar_views: OnceLock<Vec<OnceLock<Box<Tensor<T>>>>>,
    by_param: Vec<(Param<T>, Tensor<T>)>,
    param_index: ParamMap<usize>,
    /// Where `slots`'s allocation goes back to when these gradients are dropped.
    recycle: Option<GradBuffer<T>>,
}

impl<T: Float> Clone for Gradients<T> {
    fn clone(&self) -> Self {
        Gradients {
            tape_id: self.tape_id,
            slots: self.slots.clone(),
            tensors: self.tensors.clone(),
            scalar_views: OnceLock::new(),
            by_param: self.by_param.clone(),
            param_index: self.param_index.clone(),
            recycle: None,
        }
    }
}

impl<T: Float> Drop for Gradients<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            // The slots are not cleared: the next pass's number makes them read as empty.
            let slots = std::mem::take(&mut self.slots);
            let mut tensors = std::mem::take(&mut self.tensors);
            crate::tensor::pool::recycle(tensors.drain(..));
            if let Ok(mut pool) = pool.lock() {
                if pool.0.capacity() < slots.capacity() {
                    pool.0 = slots;
                }
                if pool.1.capacity() < tensors.capacity() {
                    pool.1 = tensors;
                }
            }
        }
    }
}

impl<T: Float> Gradients<T> {
    /// The gradient with respect to `x`, if it has one.
    ///
    /// # Panics
    /// If `x` lives on another tape than the one differentiated.
    #[track_caller]
    pub fn wrt(&self, x: Var<'_, T>) -> Option<&Tensor<T>> {
        assert!(
            x.tape.id() == self.tape_id,
            "tapegrad: Gradients::wrt: var {} belongs to another tape than these gradients",
            x.id
        );
        self.by_id(x.id as usize)
    }

    /// The gradient of the node with id `id` (see [`Var::id`]), if it has one.
    pub fn by_id(&self, id: usize) -> Option<&Tensor<T>> {
        match self.slots.get(id)? {
            Slot::Empty => None,
            Slot::Stored(i) => Some(&self.tensors[i as usize]),
            Slot::Scalar(v) => {
                let views = self
                    .scalar_views
                    .get_or_init(|| (0..self.slots.len()).map(|_| OnceLock::new()).collect());
                Some(views[id].get_or_init(|| Box::new(Tensor::scalar(v))))
            }
        }
    }

    /// The gradient accumulated for `param` (summed over every binding on the tape).
    pub fn param(&self, param: &Param<T>) -> Option<&Tensor<T>> {
        self.param_index.get(&param.id()).map(|&i| &self.by_param[i].1)
    }

    /// Mutable access to the gradient of `param` (for clipping or scaling before a step).
    pub fn param_mut(&mut self, param: &Param<T>) -> Option<&mut Tensor<T>> {
        let i = *self.param_index.get(&param.id())?;
        Some(&mut self.by_param[i].1)
    }

    /// Every parameter that received a gradient, with its gradient, in binding order.
    pub fn params(&self) -> impl Iterator<Item = (&Param<T>, &Tensor<T>)> {
        self.by_param.iter().map(|(p, g)| (p, g))
    }

    /// Every parameter's gradient, mutably (for clipping or scaling).
    pub fn params_mut(&mut self) -> impl Iterator<Item = (&Param<T>, &mut Tensor<T>)> {
        self.by_param.iter_mut().map(|(p, g)| (&*p, g))
    }
}

impl<'t, T: Float> std::ops::Index<Var<'t, T>> for Gradients<T> {
    type Output = Tensor<T>;
    /// The gradient with respect to a var.
    ///
    /// # Panics
    /// If the var has no gradient (a constant, or unused by the output); use
    /// [`Gradients::wrt`] to get an `Option`.
    #[track_caller]
    fn index(&self, x: Var<'t, T>) -> &Tensor<T> {
        let Some(g) = self.wrt(x) else {
            panic!(
                "tapegrad: no gradient for var {}: it is a constant, was computed under no_grad, \
                 or the differentiated output does not depend on it",
                x.id
            )
        };
        g
    }
}

impl<T: Float> std::fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for id in 0..self.slots.len() {
            if let Some(g) = self.by_id(id) {
                map.entry(&id, g);
            }
        }
        map.finish()
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Backpropagates from this one-element output (a loss) and returns every gradient.
    ///
    /// # Panics
    /// If the value has more than one element (use [`Var::backward_with_seed`] then), or it does
    /// not depend on any var that requires a gradient: computed from constants only, or under
    /// `no_grad` (PyTorch raises "element 0 of tensors does not require grad" there).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.var(2.0);
    /// let y = x.powi(3);
    /// assert_eq!(y.backward()[x].item(), 12.0);
    ///
    /// let frozen = tape.no_grad(|| x * 2.0);
    /// assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| frozen.backward())).is_err());
    /// ```
    #[track_caller]
    pub fn backward(self) -> Gradients<T> {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "tapegrad: backward: the output has shape {shape:?}, not one element; \
             use backward_with_seed(seed) with a seed of that shape"
        );
        self.backward_with_seed(Tensor::ones(&shape))
    }

    /// Backpropagates `seed` (dLoss/dSelf, the shape of this var) and returns every gradient:
    /// the vector-Jacobian product for a non-scalar output.
    ///
    /// # Panics
    /// If the seed's shape differs from this var's, or this var does not depend on any var that
    /// requires a gradient (computed from constants only, or under `no_grad`), as PyTorch raises.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0]);
    /// let y = x * x;
    /// let grads = y.backward_with_seed(Tensor::from_vec(vec![1.0, 10.0], &[2]));
    /// assert_eq!(grads[x].to_vec(), vec![2.0, 40.0]);
    /// ```
    #[track_caller]
    pub fn backward_with_seed(self, seed: Tensor<T>) -> Gradients<T> {
        let out_shape = self.shape();
        assert!(
            seed.shape() == out_shape.as_slice(),
            "tapegrad: backward_with_seed: seed shape {:?} differs from the output shape {out_shape:?}",
            seed.shape(),
        );
        assert!(
            self.requires_grad(),
            "tapegrad: backward: the output does not depend on any var that requires a gradient \
             (it was computed from constants only, or under `no_grad`), so there is no gradient \
             to compute; record it with `tape.var`/`tape.param` inputs outside `no_grad` (PyTorch \
             raises here too)"
        );
        self.backprop(seed)
    }

    /// [`backward_with_seed`](Self::backward_with_seed) without the check that the output
    /// requires a gradient: empty gradients for a constant output (the gradient checker's
    /// functions may ignore their inputs, and then every gradient is 0).
    pub(crate) fn backprop(self, seed: Tensor<T>) -> Gradients<T> {
        // One look per pass at the side state of hooks and anomaly detection: without either,
        // the loop is the unchecked copy, with nothing added per node.
        let mut out = if self.tape.hooks.is_empty() && !self.tape.anomaly.is_on() {
            self.backprop_loop::<false>(seed, &[])
        } else {
            let hooked = self.tape.hooks.ids_below(self.id as usize + 1);
            self.backprop_loop::<true>(seed, &hooked)
        };
        if crate::hooks::PARAM_HOOKS.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            let anomaly = self.tape.anomaly.is_on();
            for (param, g) in &mut out.by_param {
                let hooks = param.hooks();
                if !hooks.is_empty() {
                    let owner = crate::hooks::Owner::Param(param.id());
                    *g = crate::hooks::run_eager(&hooks, g.clone(), &owner, anomaly);
                }
            }
        }
        out
    }

    /// The reverse loop. `CHECKED` (hooks or anomaly detection) is a compile-time switch, so
    /// that the copy without them is the plain loop: `hooked` lists the nodes with hooks, highest
    /// id first, and the rules' results are checked when anomaly detection is on.
    #[inline(never)]
    fn backprop_loop<const CHECKED: bool>(self, seed: Tensor<T>, hooked: &[u32]) -> Gradients<T> {
        let anomaly = CHECKED && self.tape.anomaly.is_on();
        let mut next_hooked = hooked.iter().copied().peekable();
        let tape_nodes = self.tape.nodes.borrow();
        let end = self.id as usize + 1;
        // A plain slice in a local: through the `Ref` its pointer and length were reloaded after
        // every gradient written (the compiler cannot tell the two buffers apart).
        let nodes: &[Node<T>] = &tape_nodes[..end];
        let tape_nodes = &*tape_nodes;
        let values = self.tape.tensors.borrow();
        let (mut slots, mut grads) = self
            .tape
            .grad_buffer
            .lock()
            .map(|mut pool| std::mem::take(&mut *pool))
            .unwrap_or_default();
        slots.begin(end);
        grads.clear();
        if nodes[self.id as usize].requires_grad {
            accumulate(&mut slots, self.id as usize, &mut grads, seed);
        }
        for i in (0..end).rev() {
            // A reference, not a copy: a node is 64 bytes and this loop runs once per node.
            let node = &nodes[i];
            if CHECKED && next_hooked.next_if_eq(&(i as u32)).is_some() {
                self.run_hooks_eager(i, &mut slots, &mut grads);
            }
            if node.rule.is_inline() {
                // A micrograd-style node, checked with one comparison: the forward path that
                // sets an inline rule records only rank-0 nodes of rank-0 inputs, so values are
                // read without tags, the gradient is a number (or absent), and `needs` was taken
                // at record time. Inputs' values are loaded only by the rules that use them.
                debug_assert!(!matches!(slots.at(i), Slot::Stored(_)), "rank-0 node {i}");
                if let Some(g) = slots.scalar(i) {
                    let [xi, yi] = node.inputs;
                    let value = |id: u32| nodes.get(id as usize).map_or(T::ZERO, |n| n.scalar);
                    let [gx, gy] = node.rule.vjp_inline(
                        Args::None,
                        || [value(xi), value(yi)],
                        node.scalar,
                        g,
                        node.needs,
                    );
                    if anomaly {
                        let op = node.rule.op::<T>();
                        let inputs = [value(xi), value(yi)];
                        let inputs = &inputs[..(node.arity as usize).min(2)];
                        self.tape.anomaly_scalar_rule(
                            i,
                            (op.name(), op.rule()),
                            inputs,
                            node.scalar,
                            g,
                            [gx, gy],
                        );
                    }
                    if let Some(gx) = gx {
                        slots.add_scalar(xi as usize, gx);
                    }
                    if let Some(gy) = gy {
                        slots.add_scalar(yi as usize, gy);
                    }
                }
                continue;
            }
            let grad_out = slots.at(i);
            if matches!(grad_out, Slot::Empty) {
                continue;
            }
            let Some(op) = tape_nodes.op(node) else {
                continue;
            };
            let args = tape_nodes.args(node);
            let extra = tape_nodes.extra(node);
            let value = |v: Value<T>| match v.kind() {
                ValueKind::Scalar(s) => Cow::Owned(Tensor::scalar(s)),
                ValueKind::Stored(k) => Cow::Borrowed(&values[k as usize]),
            };
            if node.has_many_inputs() {
                let ids = tape_nodes.inputs_of(node);
                let grad_in = {
                    let xs: Vec<Cow<'_, Tensor<T>>> =
                        ids.iter().map(|&j| value(nodes[j as usize].value())).collect();
                    let refs: Vec<&Tensor<T>> = xs.iter().map(|x| &**x).collect();
                    let needs: Vec<bool> = ids.iter().map(|&j| nodes[j as usize].requires_grad).collect();
                    let out = value(node.value());
                    let g = match grad_out {
                        Slot::Scalar(s) => Cow::Owned(Tensor::scalar(s)),
                        Slot::Stored(k) => Cow::Borrowed(&grads[k as usize]),
                        Slot::Empty => unreachable!("skipped above"),
                    };
                    let cx = VjpMany {
                        args,
                        extra,
                        inputs: &refs,
                        output: &*out,
                        grad_out: &*g,
                        needs: &needs,
                    };
                    // The rule's result as the block's value in the plain copy of the loop: bound
                    // to a name first, it was moved once more per node (W3 +4 %).
                    if anomaly {
                        let grad_in = op.vjp_many_tensor(&cx);
                        let gs: Vec<Option<&Tensor<T>>> = grad_in.iter().map(Option::as_ref).collect();
                        self.tape
                            .anomaly_rule(i, user_names(op, extra), &refs, &out, &g, &gs);
                        grad_in
                    } else {
                        op.vjp_many_tensor(&cx)
                    }
                };
                for (&id, g) in ids.iter().zip(grad_in) {
                    if let Some(g) = g {
                        accumulate(&mut slots, id as usize, &mut grads, g);
                    }
                }
                continue;
            }
            let (ids, arity) = (node.inputs, node.arity);
            let x = &nodes[ids[0] as usize];
            let y = if arity > 1 { &nodes[ids[1] as usize] } else { x };
            let needs = [x.requires_grad, arity > 1 && y.requires_grad];
            if let (
                ValueKind::Scalar(xv),
                ValueKind::Scalar(yv),
                ValueKind::Scalar(out),
                Slot::Scalar(g),
                None,
            ) = (
                x.value().kind(),
                y.value().kind(),
                node.value().kind(),
                grad_out,
                extra,
            ) {
                // Micrograd-style scalar graph: plain arithmetic, nothing to allocate.
                // Only ops without an inline rule reach here (see above); ops with `Extra`
                // arguments take the tensor path, whose context carries them.
                let [gx, gy] = op.vjp_scalar(args, [xv, yv], out, g, needs);
                if anomaly {
                    let inputs = [xv, yv];
                    let inputs = &inputs[..(arity as usize).min(2)];
                    self.tape
                        .anomaly_scalar_rule(i, (op.name(), op.rule()), inputs, out, g, [gx, gy]);
                }
                if let Some(gx) = gx {
                    slots.add_scalar(ids[0] as usize, gx);
                }
                if let (Some(gy), true) = (gy, arity > 1) {
                    slots.add_scalar(ids[1] as usize, gy);
                }
                continue;
            }
            // A narrow adds its gradient into the slice of the input's in place, rather than
            // padding it with zeros to the input's shape and adding that: the T steps of a
            // recurrent layer, each cut from one [T * N, 4H] projection, cost O(T) that way
            // instead of O(T²). The recorded (higher-order) path keeps the Unnarrow rule.
            if let (Args::Narrow { axis, start, .. }, Slot::Stored(k), true) =
                (args, grad_out, x.requires_grad)
                && arity == 1
                && op.name() == "narrow"
            {
                let full = value(x.value()).shape().to_vec();
                accumulate_narrowed(
                    &mut slots,
                    ids[0] as usize,
                    &mut grads,
                    k as usize,
                    (&full, axis as usize, start as usize),
                );
                continue;
            }
            let ids = node.inputs();
            let grad_in = {
                let (xv, yv, out) = (value(x.value()), value(y.value()), value(node.value()));
                let g = match grad_out {
                    Slot::Scalar(s) => Cow::Owned(Tensor::scalar(s)),
                    Slot::Stored(k) => Cow::Borrowed(&grads[k as usize]),
                    Slot::Empty => unreachable!("skipped above"),
                };
                let cx = Vjp {
                    args,
                    extra,
                    inputs: [&*xv, &*yv],
                    output: &*out,
                    grad_out: &*g,
                    needs,
                };
                if anomaly {
                    let grad_in = op.vjp_tensor(&cx);
                    let inputs = [&*xv, &*yv];
                    let gs = [grad_in[0].as_ref(), grad_in[1].as_ref()];
                    let n = ids.len();
                    self.tape
                        .anomaly_rule(i, (op.name(), op.rule()), &inputs[..n], &out, &g, &gs[..n]);
                    grad_in
                } else {
                    op.vjp_tensor(&cx)
                }
            };
            for (&id, g) in ids.iter().zip(grad_in) {
                if let Some(g) = g {
                    accumulate(&mut slots, id as usize, &mut grads, g);
                }
            }
        }
        let mut out = Gradients {
            tape_id: self.tape.id(),
            slots,
            tensors: grads,
            scalar_views: OnceLock::new(),
            by_param: Vec::new(),
            param_index: ParamMap::default(),
            recycle: Some(self.tape.grad_buffer.clone()),
        };
        for (id, param) in self.tape.params.borrow().iter() {
            let g = match out.slots.at(*id as usize) {
                Slot::Empty => None,
                Slot::Scalar(v) => Some(Tensor::scalar(v)),
                Slot::Stored(k) => Some(out.tensors[k as usize].clone()),
            };
            if let Some(g) = g {
                match out.param_index.get(&param.id()) {
                    Some(&k) => out.by_param[k].1.add_assign_same_shape(&g),
                    None => {
                        out.param_index.insert(param.id(), out.by_param.len());
                        out.by_param.push((param.clone(), g));
                    }
                }
            }
        }
        out
    }

    /// Runs node `i`'s hooks on its (complete) gradient in the eager pass, in place.
    #[cold]
    #[inline(never)]
    fn run_hooks_eager(self, i: usize, slots: &mut Slots<T>, grads: &mut [Tensor<T>]) {
        let g = match slots.at(i) {
            Slot::Empty => return,
            Slot::Scalar(v) => Tensor::scalar(v),
            Slot::Stored(k) => grads[k as usize].clone(),
        };
        let hooks = self.tape.hooks.of(i as u32);
        let id = i as u32;
        let owner = crate::hooks::Owner::Var(id, Var { tape: self.tape, id }.name());
        let g = crate::hooks::run_eager(&hooks, g, &owner, self.tape.anomaly.is_on());
        match slots.at(i) {
            Slot::Stored(k) => grads[k as usize] = g,
            _ => slots.set(i, Slot::Scalar(g.item())),
        }
    }

    /// Differentiable gradients: d(self)/d(x) for each `x` in `wrt`, as vars on the same tape.
    ///
    /// The backward pass is recorded (each rule runs on vars instead of tensors), so the result
    /// can be differentiated again: second derivatives, Hessian-vector products, Newton steps.
    /// A var the output does not depend on gets a zero gradient.
    ///
    /// # Panics
    /// If this var has more than one element, or a var of `wrt` lives on another tape.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let y = x.powi(3);                 // x³
    /// let dy = y.grad(&[x])[0];          // 3x² = 12
    /// let d2y = dy.grad(&[x])[0];        // 6x = 12
    /// let d3y = d2y.grad(&[x])[0];       // 6
    /// assert_eq!((dy.item(), d2y.item(), d3y.item()), (12.0, 12.0, 6.0));
    /// ```
    #[track_caller]
    pub fn grad(self, wrt: &[Var<'t, T>]) -> Vec<Var<'t, T>> {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "tapegrad: grad: the output has shape {shape:?}, not one element; reduce it first \
             (for example with sum)"
        );
        let seed = self.tape.constant(Tensor::ones(&shape));
        self.grad_with_seed(seed, wrt)
    }

    /// Like [`Var::grad`] with an explicit upstream gradient `seed` (a var of this var's shape):
    /// the recorded vector-Jacobian product.
    #[track_caller]
    pub fn grad_with_seed(self, seed: Var<'t, T>, wrt: &[Var<'t, T>]) -> Vec<Var<'t, T>> {
        self.check_same_tape(seed, "grad_with_seed");
        let (seed_shape, out_shape) = (seed.shape(), self.shape());
        assert!(
            seed_shape == out_shape,
            "tapegrad: grad_with_seed: seed shape {seed_shape:?} differs from the output shape {out_shape:?}"
        );
        for x in wrt {
            self.check_same_tape(*x, "grad");
        }
        let end = self.id as usize + 1;
        let mut grads: Vec<Option<Var<'t, T>>> = vec![None; end];
        if self.requires_grad() {
            grads[self.id as usize] = Some(seed);
        }
        // Hooks and anomaly detection, looked at once: the var hooks of this tape and the hooks
        // of the parameters bound on it, by node.
        let anomaly = self.tape.anomaly.is_on();
        let mut hooked: std::collections::BTreeMap<u32, Vec<crate::hooks::HookFn<T>>> = self
            .tape
            .hooks
            .ids_below(end)
            .into_iter()
            .map(|id| (id, self.tape.hooks.of(id)))
            .collect();
        // The nodes whose hooks are a parameter's, so that a hook's error names the parameter.
        let mut param_of: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        if crate::hooks::PARAM_HOOKS.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            for (id, param) in self.tape.params.borrow().iter() {
                if (*id as usize) < end {
                    let hooks = param.hooks();
                    if !hooks.is_empty() {
                        hooked.entry(*id).or_default().extend(hooks);
                        param_of.insert(*id, param.id());
                    }
                }
            }
        }
        for i in (0..end).rev() {
            if let (Some(hooks), Some(g)) = (hooked.get(&(i as u32)), grads[i]) {
                let owner = match param_of.get(&(i as u32)) {
                    Some(&param) => crate::hooks::Owner::Param(param),
                    None => crate::hooks::Owner::Var(
                        i as u32,
                        Var {
                            tape: self.tape,
                            id: i as u32,
                        }
                        .name(),
                    ),
                };
                grads[i] = Some(crate::hooks::run_recorded(hooks, g, &owner));
            }
            let Some(grad_out) = grads[i] else { continue };
            // Copy what the rule needs, then release the borrow: the rule records new nodes.
            let (op, args, ids, needs, extra, many) = {
                let nodes = self.tape.nodes.borrow();
                let node = &nodes[i];
                let Some(op) = nodes.op(node) else { continue };
                let extra = nodes.extra(node).cloned();
                let many: Option<Vec<u32>> = node.has_many_inputs().then(|| nodes.inputs_of(node).to_vec());
                let ids = node.inputs;
                let arity = node.arity as usize;
                let needs = [
                    nodes[ids[0] as usize].requires_grad,
                    arity > 1 && nodes[ids[1] as usize].requires_grad,
                ];
                (op, nodes.args(node), (ids, arity), needs, extra, many)
            };
            let output = Var {
                tape: self.tape,
                id: i as u32,
            };
            if let Some(many) = many {
                let (xs, needs): (Vec<Var<'t, T>>, Vec<bool>) = many
                    .iter()
                    .map(|&id| {
                        let x = Var { tape: self.tape, id };
                        (x, x.requires_grad())
                    })
                    .unzip();
                let refs: Vec<&Var<'t, T>> = xs.iter().collect();
                let rule = || {
                    op.vjp_many_var(&VjpMany {
                        args,
                        extra: extra.as_ref(),
                        inputs: &refs,
                        output: &output,
                        grad_out: &grad_out,
                        needs: &needs,
                    })
                };
                let grad_in = if anomaly {
                    let names = user_names(op, extra.as_ref());
                    let grad_in = self.tape.anomaly.in_rule(i as u32, names.0, rule);
                    self.tape
                        .anomaly_var_rule(i, names, &xs, output, grad_out, &grad_in);
                    grad_in
                } else {
                    rule()
                };
                for (&id, g) in many.iter().zip(grad_in) {
                    if let Some(g) = g {
                        let slot = &mut grads[id as usize];
                        *slot = Some(match *slot {
                            Some(old) => old + g,
                            None => g,
                        });
                    }
                }
                continue;
            }
            let (ids, arity) = ids;
            let x = Var {
                tape: self.tape,
                id: ids[0],
            };
            let y = Var {
                tape: self.tape,
                id: if arity > 1 { ids[1] } else { ids[0] },
            };
            let cx = Vjp {
                args,
                extra: extra.as_ref(),
                inputs: [&x, &y],
                output: &output,
                grad_out: &grad_out,
                needs,
            };
            let grad_in = if anomaly {
                let grad_in = self.tape.anomaly.in_rule(i as u32, op.name(), || op.vjp_var(&cx));
                self.tape.anomaly_var_rule(
                    i,
                    (op.name(), op.rule()),
                    &[x, y][..arity],
                    output,
                    grad_out,
                    &grad_in[..arity],
                );
                grad_in
            } else {
                op.vjp_var(&cx)
            };
            for (&id, g) in ids[..arity].iter().zip(grad_in) {
                if let Some(g) = g {
                    let slot = &mut grads[id as usize];
                    *slot = Some(match *slot {
                        Some(old) => old + g,
                        None => g,
                    });
                }
            }
        }
        wrt.iter()
            .map(|x| {
                grads
                    .get(x.id as usize)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| self.tape.constant(Tensor::zeros(&x.shape())))
            })
            .collect()
    }
}

/// Adds `g` into a node's gradient slot: inline when rank 0, in place when already stored.
/// Adds the stored gradient `grads[k]` of a narrow (`(full shape, axis, start)` of its input)
/// into node `i`'s gradient, in place when `i` has one already.
fn accumulate_narrowed<T: Float>(
    slots: &mut Slots<T>,
    i: usize,
    grads: &mut Vec<Tensor<T>>,
    k: usize,
    (full, axis, start): (&[usize], usize, usize),
) {
    match slots.at(i) {
        Slot::Stored(m) => {
            let m = m as usize;
            debug_assert_ne!(m, k, "a node and its input share a gradient slot");
            let (g, acc) = if k < m {
                let (lo, hi) = grads.split_at_mut(m);
                (&lo[k], &mut hi[0])
            } else {
                let (lo, hi) = grads.split_at_mut(k);
                (&hi[0], &mut lo[m])
            };
            acc.add_narrowed(g, axis, start);
        }
        Slot::Empty => {
            let g = grads[k].unnarrow(full, axis, start);
            accumulate(slots, i, grads, g);
        }
        Slot::Scalar(_) => unreachable!("a narrow's input has at least one axis"),
    }
}

fn accumulate<T: Float>(slots: &mut Slots<T>, i: usize, grads: &mut Vec<Tensor<T>>, g: Tensor<T>) {
    let slot = match (slots.at(i), g.as_rank0()) {
        (Slot::Empty, Some(v)) => Slot::Scalar(v),
        (Slot::Scalar(acc), Some(v)) => Slot::Scalar(acc + v),
        (Slot::Stored(k), _) => {
            grads[k as usize].add_assign_same_shape(&g);
            Slot::Stored(k)
        }
        (Slot::Empty, None) => {
            let k = u32::try_from(grads.len()).expect("tapegrad: at most 2^32 gradient tensors");
            grads.push(g);
            Slot::Stored(k)
        }
        (Slot::Scalar(_), None) => unreachable!("a rank-0 node received a gradient of another shape"),
    };
    slots.set(i, slot);
}

/// The op's name and rule text as its user knows them: a custom op's own, since its node's op
/// is the placeholder that runs every custom rule.
fn user_names<T: Float>(op: &dyn DynOp<T>, extra: Option<&Extra>) -> (&'static str, &'static str) {
    (
        extra.and_then(Extra::custom_name).unwrap_or_else(|| op.name()),
        extra.and_then(Extra::custom_rule).unwrap_or_else(|| op.rule()),
    )
}
