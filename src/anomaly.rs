//! Anomaly detection ([`Tape::set_anomaly_detection`]): the first op whose output is NaN or
//! infinite from finite inputs, and the first backward rule that turns a finite gradient into a
//! NaN or infinite one, panic with the op, the shapes, the bad value and the user's file and line.
//!
//! Off, it costs one predictable branch per recorded op (a `Cell<bool>` read beside the
//! recording flag) and nothing per backward node: the reverse loop has a checked copy, chosen
//! once per pass. The places where ops were recorded are kept beside the nodes, only while on.

use std::cell::{Cell, RefCell};
use std::panic::Location;

use crate::tape::{Nodes, ValueRef};
use crate::{Float, Tape, Tensor, Var};

/// Where a node was recorded: the user's line, and the op whose recorded backward rule recorded
/// it (`None` for a node the user's code recorded).
#[derive(Clone, Copy)]
struct Site {
    id: u32,
    location: &'static Location<'static>,
    backward_of: Option<&'static str>,
}

/// A tape's anomaly-detection state.
#[derive(Default)]
pub(crate) struct Anomaly {
    on: Cell<bool>,
    /// The places where nodes were recorded while on, by increasing id.
    sites: RefCell<Vec<Site>>,
    /// While the recorded backward runs node `id`'s rule: `(id, its op)`. The rule's own nodes
    /// are attributed to that node's line, and forward checks are suspended (the rule's result
    /// is checked instead).
    in_rule: Cell<Option<(u32, &'static str)>>,
}

impl Anomaly {
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        self.on.get()
    }

    pub(crate) fn clear(&mut self) {
        self.sites.get_mut().clear();
        self.in_rule.set(None);
    }

    /// The user's line that recorded node `id`, if it was recorded while on.
    fn site(&self, id: u32) -> Option<Site> {
        let sites = self.sites.borrow();
        sites.binary_search_by_key(&id, |s| s.id).ok().map(|k| sites[k])
    }

    /// Keeps where node `id` was recorded (the caller's line, or the line of the node whose
    /// recorded rule is running).
    #[track_caller]
    fn remember(&self, id: u32) {
        let site = match self.in_rule.get() {
            Some((of, op)) => match self.site(of) {
                Some(s) => Site {
                    id,
                    location: s.location,
                    backward_of: Some(op),
                },
                None => return,
            },
            None => Site {
                id,
                location: Location::caller(),
                backward_of: None,
            },
        };
        self.sites.borrow_mut().push(site);
    }

    /// Runs `f` as the recorded backward rule of node `id` (op `op`): see [`Anomaly::in_rule`].
    pub(crate) fn in_rule<R>(&self, id: u32, op: &'static str, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Cell<Option<(u32, &'static str)>>, Option<(u32, &'static str)>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _restore = Restore(&self.in_rule, self.in_rule.replace(Some((id, op))));
        f()
    }

    /// "recorded at file:line", for messages.
    fn place(&self, id: u32) -> String {
        match self.site(id) {
            Some(Site {
                location,
                backward_of: None,
                ..
            }) => format!("recorded at {location}"),
            Some(Site {
                location,
                backward_of: Some(op),
                ..
            }) => format!("recorded by the backward rule of `{op}` recorded at {location}"),
            None => "recorded while anomaly detection was off (no line kept)".to_string(),
        }
    }
}

impl<T: Float> Tape<T> {
    /// Turns anomaly detection on or off (off by default), as PyTorch's
    /// `torch.autograd.set_detect_anomaly`: while on, the first op whose output is NaN or
    /// infinite although its inputs are finite panics, and so does [`Var::backward`] (and the
    /// recorded [`Var::grad`]) at the first rule that turns a finite gradient into a NaN or
    /// infinite one, where the op's recorded values are finite. Both messages name the op, the
    /// shapes, the bad element and the input or gradient concerned, and the file and line where
    /// your code recorded the op: kept per node only while on (the public ops carry
    /// `#[track_caller]` down to the recording).
    ///
    /// A NaN that enters as data (a leaf, or an input already NaN) is not reported: only where
    /// a non-finite value is born. Off, it costs one predictable branch per recorded op and
    /// nothing per node of the backward pass. The setting survives [`Tape::reset`].
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// tape.set_anomaly_detection(true);
    /// let x = tape.var(Tensor::from_vec(vec![1.0, -1.0], &[2]));
    /// let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| x.ln())).unwrap_err();
    /// let msg = err.downcast_ref::<String>().unwrap();
    /// assert!(msg.contains("`ln`") && msg.contains("NaN") && msg.contains(file!()), "{msg}");
    ///
    /// tape.set_anomaly_detection(false);
    /// assert!(x.ln().value().to_vec()[1].is_nan()); // off: no check
    /// ```
    pub fn set_anomaly_detection(&self, on: bool) {
        self.anomaly.on.set(on);
        self.update_plain();
    }

    /// Whether anomaly detection is on (see [`Tape::set_anomaly_detection`]).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f32>::new();
    /// assert!(!tape.anomaly_detection());
    /// tape.set_anomaly_detection(true);
    /// assert!(tape.anomaly_detection());
    /// ```
    pub fn anomaly_detection(&self) -> bool {
        self.anomaly.is_on()
    }

    /// The forward check of the rank-0 op `op` on `inputs` just pushed as node `id`, and where
    /// it was recorded (when `recorded`; under `no_grad` the node is a constant).
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(crate) fn anomaly_scalar_op(
        &self,
        nodes: &Nodes<T>,
        op: &'static str,
        inputs: &[u32],
        id: u32,
        recorded: bool,
    ) {
        let out = nodes[id as usize].scalar;
        let inputs: Vec<T> = inputs.iter().map(|&i| nodes[i as usize].scalar).collect();
        if self.anomaly.in_rule.get().is_none() && !out.is_finite() && inputs.iter().all(|x| x.is_finite()) {
            let ins: Vec<String> = inputs
                .iter()
                .enumerate()
                .map(|(k, x)| format!("input {k} of shape [] (value {x:?})"))
                .collect();
            panic!(
                "tapegrad: anomaly detection: `{op}` recorded at {} produced {} (output of shape []) \
                 from finite inputs: {}",
                Location::caller(),
                describe(out),
                ins.join(", ")
            );
        }
        if recorded {
            self.anomaly.remember(id);
        }
    }

    /// The forward check of an op on tensors, and where it was recorded (`id`, when recording).
    #[cold]
    #[inline(never)]
    #[track_caller]
    pub(crate) fn anomaly_tensor_op(
        &self,
        op: &'static str,
        inputs: &[u32],
        out: &Tensor<T>,
        id: Option<u32>,
    ) {
        if self.anomaly.in_rule.get().is_none() && !out.all_finite() {
            let values: Vec<ValueRef<'_, T>> = inputs.iter().map(|&i| self.node_value(i)).collect();
            if values.iter().all(|v| v.all_finite()) {
                let (at, bad) = first_bad(out);
                let refs: Vec<&Tensor<T>> = values.iter().map(|v| &**v).collect();
                panic!(
                    "tapegrad: anomaly detection: `{op}` recorded at {} produced {} at element {:?} \
                     of its output (shape {:?}) from finite inputs: {}",
                    Location::caller(),
                    describe(bad),
                    unravel(at, out.shape()),
                    out.shape(),
                    describe_inputs(&refs, out.shape(), at)
                );
            }
        }
        if let Some(id) = id {
            self.anomaly.remember(id);
        }
    }

    /// The eager backward check of node `id`'s rule (op `op`): `inputs` and `output` are its
    /// recorded values, `grad_out` the gradient it received, `grad_in` what its rule returned.
    /// Panics if the rule turned a finite gradient into a non-finite one on finite values.
    #[cold]
    #[inline(never)]
    pub(crate) fn anomaly_rule(
        &self,
        id: usize,
        op: (&'static str, &'static str),
        inputs: &[&Tensor<T>],
        output: &Tensor<T>,
        grad_out: &Tensor<T>,
        grad_in: &[Option<&Tensor<T>>],
    ) {
        let Some((k, bad)) = grad_in
            .iter()
            .enumerate()
            .find_map(|(k, g)| g.filter(|g| !g.all_finite()).map(|g| (k, g)))
        else {
            return;
        };
        if !grad_out.all_finite() || !output.all_finite() || !inputs.iter().all(|x| x.all_finite()) {
            return;
        }
        let (at, value) = first_bad(bad);
        let (name, rule) = op;
        panic!(
            "tapegrad: anomaly detection: the backward rule of `{name}` (node {id}, {}) turned a finite \
             gradient (shape {:?}) into {} at element {:?} of the gradient for input {k} (shape {:?}), \
             from finite values: {}, output of shape {:?}; the rule: {rule}",
            self.anomaly.place(id as u32),
            grad_out.shape(),
            describe(value),
            unravel(at, bad.shape()),
            bad.shape(),
            describe_inputs(inputs, bad.shape(), at),
            output.shape(),
        );
    }

    /// [`Tape::anomaly_rule`] for a rank-0 rule, on plain numbers.
    #[cold]
    #[inline(never)]
    pub(crate) fn anomaly_scalar_rule(
        &self,
        id: usize,
        op: (&'static str, &'static str),
        inputs: &[T],
        output: T,
        grad_out: T,
        grad_in: [Option<T>; 2],
    ) {
        let ins: Vec<Tensor<T>> = inputs.iter().map(|&x| Tensor::scalar(x)).collect();
        let refs: Vec<&Tensor<T>> = ins.iter().collect();
        let gs: Vec<Option<Tensor<T>>> = grad_in
            .iter()
            .take(inputs.len())
            .map(|g| g.map(Tensor::scalar))
            .collect();
        let g_refs: Vec<Option<&Tensor<T>>> = gs.iter().map(Option::as_ref).collect();
        self.anomaly_rule(
            id,
            op,
            &refs,
            &Tensor::scalar(output),
            &Tensor::scalar(grad_out),
            &g_refs,
        );
    }

    /// [`Tape::anomaly_rule`] for the recorded backward, on vars.
    pub(crate) fn anomaly_var_rule(
        &self,
        id: usize,
        op: (&'static str, &'static str),
        inputs: &[Var<'_, T>],
        output: Var<'_, T>,
        grad_out: Var<'_, T>,
        grad_in: &[Option<Var<'_, T>>],
    ) {
        let grads: Vec<Option<Tensor<T>>> = grad_in.iter().map(|g| g.map(|g| g.value())).collect();
        if grads.iter().flatten().all(Tensor::all_finite) {
            return;
        }
        let ins: Vec<Tensor<T>> = inputs.iter().map(Var::value).collect();
        let refs: Vec<&Tensor<T>> = ins.iter().collect();
        let g_refs: Vec<Option<&Tensor<T>>> = grads.iter().map(Option::as_ref).collect();
        self.anomaly_rule(id, op, &refs, &output.value(), &grad_out.value(), &g_refs);
    }
}

/// The flat index and value of the first non-finite element (the tensor has one).
fn first_bad<T: Float>(t: &Tensor<T>) -> (usize, T) {
    t.as_slice()
        .iter()
        .copied()
        .enumerate()
        .find(|(_, x)| !x.is_finite())
        .unwrap_or((0, T::ZERO))
}

/// "NaN", "inf" or "-inf".
fn describe<T: Float>(x: T) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > T::ZERO {
        "inf"
    } else {
        "-inf"
    }
}

/// The multi-index of flat index `at` in `shape`.
fn unravel(mut at: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            index[i] = at % n;
            at /= n;
        }
    }
    index
}

/// Each input's shape, and its value at element `at` when it has the shape `like` (an elementwise
/// op's input) or one element.
fn describe_inputs<T: Float>(inputs: &[&Tensor<T>], like: &[usize], at: usize) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(k, x)| {
            let value = if x.shape() == like {
                x.as_slice().get(at).map(|v| format!(" (value {v:?} there)"))
            } else if x.numel() == 1 {
                Some(format!(" (value {:?})", x.as_slice()[0]))
            } else {
                None
            };
            format!("input {k} of shape {:?}{}", x.shape(), value.unwrap_or_default())
        })
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use crate::ops::conv::Window2d;
    use crate::{Tape, Tensor, Var, loss};

    /// Every node an expression recorded (leaves aside) was attributed to this file and `line`;
    /// the misattributed ones are listed in `bad`.
    fn check_sites(tape: &Tape<f64>, before: usize, line: u32, what: &str, bad: &mut Vec<String>) {
        assert!(tape.len() > before, "{what} recorded nothing");
        for v in tape.vars().skip(before) {
            let Some(op) = v.op() else { continue };
            match tape.anomaly.site(v.id) {
                Some(site) if (site.location.file(), site.location.line()) == (file!(), line) => {}
                Some(site) => bad.push(format!("{what}: `{op}` attributed to {}", site.location)),
                None => bad.push(format!("{what}: `{op}` has no site")),
            }
        }
    }

    thread_local! {
        static BAD: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    macro_rules! here {
        ($tape:expr, $e:expr) => {{
            let before = $tape.len();
            let _ = $e;
            BAD.with_borrow_mut(|bad| check_sites(&$tape, before, line!(), stringify!($e), bad));
        }};
    }

    /// The public ops carry `#[track_caller]` down to the recording: each node is attributed to
    /// the user's line, composite ops (softmax, var, conv) and operators included.
    #[test]
    fn every_public_op_reports_the_users_line() {
        let tape = Tape::<f64>::new();
        tape.set_anomaly_detection(true);
        let m = tape.var(Tensor::from_fn(&[2, 3], |i| 0.3 + i as f64 * 0.25));
        let n = tape.var(Tensor::from_fn(&[3, 2], |i| 0.5 - i as f64 * 0.125));
        let s = tape.var(0.7);
        let r = tape.var(Tensor::from_fn(&[3], |i| 1.0 + i as f64));
        let idx = Tensor::from_vec(vec![0usize, 2, 1, 0, 1, 2], &[2, 3]);
        let mask = Tensor::from_vec(vec![true, false, true, false, false, true], &[2, 3]);
        here!(tape, s + s);
        here!(tape, s - 1.0);
        here!(tape, 2.0 * s);
        here!(tape, s / s);
        here!(tape, -s);
        here!(tape, m + r);
        here!(tape, m * r - r / 2.0);
        here!(tape, -m);
        here!(tape, m.exp());
        here!(tape, m.ln());
        here!(tape, m.sqrt());
        here!(tape, m.abs());
        here!(tape, m.tanh());
        here!(tape, m.sigmoid());
        here!(tape, m.relu());
        here!(tape, m.sin());
        here!(tape, m.cos());
        here!(tape, m.log1p());
        here!(tape, m.expm1());
        here!(tape, m.square());
        here!(tape, m.rsqrt());
        here!(tape, m.silu());
        here!(tape, m.gelu());
        here!(tape, m.gelu_tanh());
        here!(tape, m.softplus());
        here!(tape, m.erf());
        here!(tape, s.exp() * s.tanh() + s.relu().sin());
        here!(tape, m.powf(1.5));
        here!(tape, m.powi(3));
        here!(tape, m.leaky_relu(0.1));
        here!(tape, m.elu(1.0));
        here!(tape, m.clamp(0.4, 0.9));
        here!(tape, m.maximum(m.exp()));
        here!(tape, m.minimum(m.exp()));
        here!(tape, m.pick(&[1, 2]));
        here!(tape, m.index_select(1, &Tensor::from_vec(vec![2, 0], &[2])));
        here!(tape, m.gather(1, &idx));
        here!(tape, m.scatter_add(1, &idx, m));
        here!(tape, Var::cat(&[m, m], 0));
        here!(tape, Var::stack(&[m, m], 1));
        here!(tape, m.pad(&[(1, 0), (0, 2)], 0.0));
        here!(tape, m.split(&[1, 2], 1));
        here!(tape, m.chunk(3, 1));
        here!(tape, m.masked_fill(&mask, 0.0));
        here!(tape, Var::where_cond(&mask, m, m.exp()));
        here!(tape, m.tril(0));
        here!(tape, m.triu(1));
        here!(tape, m.matmul(&n));
        here!(tape, m.matmul_t(&m));
        here!(tape, m.sum());
        here!(tape, m.mean());
        here!(tape, m.sum_axis(1, false));
        here!(tape, m.mean_axis(0, true));
        here!(tape, m.max_axis(1, false));
        here!(tape, m.min_axis(0, false));
        here!(tape, m.sum_to(&[1, 3]));
        here!(tape, m.logsumexp(1, false));
        here!(tape, m.cumsum(1));
        here!(tape, m.var_axis(1, 1, false));
        here!(tape, m.std_axis(1, 1, false));
        here!(tape, m.sum_axes(&[0, 1], false));
        here!(tape, m.mean_axes(&[1], true));
        here!(tape, m.reshape(&[3, 2]));
        here!(tape, m.transpose(0, 1));
        here!(tape, r.broadcast_to(&[2, 3]));
        here!(tape, m.narrow(1, 1, 2));
        here!(tape, m.permute(&[1, 0]));
        here!(tape, m.unsqueeze(0).squeeze(0));
        here!(tape, m.flatten(0, 1));
        here!(tape, m.flip(&[1]));
        here!(tape, m.repeat(&[2, 1]));
        here!(tape, m.softmax(1));
        here!(tape, m.log_softmax(0));
        here!(tape, Var::einsum("ij,jk->ik", &[m, n]));
        let img = tape.var(Tensor::from_fn(&[1, 1, 4, 4], |i| i as f64 * 0.1));
        let w = tape.var(Tensor::from_fn(&[2, 1, 2, 2], |i| 0.5 - i as f64 * 0.1));
        let b = tape.var(Tensor::from_vec(vec![0.1, -0.2], &[2]));
        here!(tape, img.conv2d(&w, Some(&b), (1, 1), (1, 0)));
        let seq = tape.var(Tensor::from_fn(&[1, 1, 5], |i| i as f64 * 0.1));
        let k = tape.var(Tensor::from_fn(&[2, 1, 3], |i| 0.2 * i as f64));
        here!(tape, seq.conv1d(&k, Some(&b), 1, 1, 1));
        here!(tape, img.max_pool2d((2, 2), (2, 2), (0, 0)));
        let window = Window2d::new((2, 2));
        here!(tape, img.unfold(window));
        here!(tape, img.unfold(window).fold((4, 4), window));
        let target = tape.constant(Tensor::from_fn(&[2, 3], |i| i as f64 * 0.2));
        here!(tape, loss::cross_entropy(m, &[2, 0]));
        here!(tape, loss::nll(m.log_softmax(1), &[1, 0]));
        here!(tape, loss::mse(m, target));
        here!(tape, loss::l1(m, target));
        here!(tape, loss::huber(m, target, 0.5));
        here!(tape, loss::binary_cross_entropy_with_logits(m, target));
        let bad = BAD.take();
        assert!(bad.is_empty(), "{} misattributed:\n{}", bad.len(), bad.join("\n"));
    }

    /// The nodes a recorded backward rule records are attributed to the user's op.
    #[test]
    fn a_recorded_rule_records_at_the_users_line() {
        let tape = Tape::<f64>::new();
        tape.set_anomaly_detection(true);
        let x = tape.var(Tensor::from_vec(vec![1.0, 4.0], &[2]));
        let line = line!() + 1;
        let y = x.sqrt();
        let before = tape.len();
        let _ = y.sum().grad(&[x]);
        let rule_nodes: Vec<_> = tape.vars().skip(before).filter(|v| v.op().is_some()).collect();
        assert!(!rule_nodes.is_empty());
        let from_sqrt = rule_nodes
            .iter()
            .filter_map(|v| tape.anomaly.site(v.id))
            .filter(|s| s.backward_of == Some("sqrt"))
            .inspect(|s| assert_eq!((s.location.file(), s.location.line()), (file!(), line)))
            .count();
        assert!(from_sqrt > 0);
    }

    /// Off, nothing is kept; nodes recorded before it was turned on have no site.
    #[test]
    fn sites_are_kept_only_while_on() {
        let tape = Tape::<f64>::new();
        let x = tape.var(2.0);
        let y = x.exp();
        tape.set_anomaly_detection(true);
        let z = y.ln();
        assert!(tape.anomaly.site(y.id).is_none());
        assert!(tape.anomaly.site(z.id).is_some());
        tape.set_anomaly_detection(false);
        let w = z.sqrt();
        assert!(tape.anomaly.site(w.id).is_none());
        assert_eq!(tape.anomaly.sites.borrow().len(), 1);
    }
}
