//! [`BackwardTrace`]: a readable, step-by-step account of a backward pass.
//!
//! Design: [`Var::backward_traced`] runs the ordinary backward pass, then replays it. Walking
//! the tape in the same reverse order, each node's incoming gradient is read from the finished
//! [`Gradients`] (a node's gradient is complete before backward reaches it, since every node
//! that uses it comes later on the tape), and what it sends to each input is recomputed by
//! calling the op's own first-order rule on the recorded values: the same code that backward
//! ran, so the trace cannot drift from the engine, and the hot loop of backward carries no
//! tracing. The running totals the trace keeps end equal to the gradients backward returned.

use std::collections::HashMap;
use std::fmt;

use super::format;
use crate::ops::{Vjp, VjpMany};
use crate::{Float, Gradients, LeafKind, Tensor, Var};

/// What one step of a backward pass sent to one input.
#[derive(Clone, Debug)]
pub struct Contribution<T: Float = f32> {
    /// The input's node id.
    pub input: usize,
    /// The input's name, if it has one.
    pub name: Option<String>,
    /// `"x"` for the first input, `"y"` for the second (the names used by the rule).
    pub role: &'static str,
    /// What this step added to the input's gradient.
    pub added: Tensor<T>,
    /// The input's gradient after the addition.
    pub total: Tensor<T>,
}

/// One node's step in a backward pass.
#[derive(Clone, Debug)]
pub struct TraceStep<T: Float = f32> {
    /// The node's id ([`Var::id`]).
    pub id: usize,
    /// The node's name, if it has one.
    pub name: Option<String>,
    /// The op that computed the node (`None` for a leaf).
    pub op: Option<&'static str>,
    /// The op's arguments (`"axis=1, keepdim=false"`), empty if none.
    pub args: String,
    /// For a leaf: how it entered the tape.
    pub leaf: Option<LeafKind>,
    /// The ids of the op's inputs.
    pub inputs: Vec<usize>,
    /// The node's value.
    pub value: Tensor<T>,
    /// The gradient flowing into the node, `grad_out` = d(output)/d(node).
    pub grad_out: Tensor<T>,
    /// The op's local derivative rule ([`Var::op_rule`]); `None` for a leaf.
    pub rule: Option<&'static str>,
    /// What the step added to each input that needs a gradient.
    pub contributions: Vec<Contribution<T>>,
}

/// Every step of one backward pass, in the order backward runs them (reverse tape order):
/// for each node that received a gradient, its op, the incoming gradient, the derivative rule,
/// and what it added to each input's gradient. Leaves come last, with their final gradients.
///
/// `Display` prints it; [`BackwardTrace::print`] writes it to standard output.
///
/// ```
/// use tapegrad::Tape;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.var_named("x", 2.0);
/// let y = tape.var_named("y", 3.0);
/// let z = (x * y).named("z");
/// let loss = (z + x).named("loss");
/// let (grads, trace) = loss.backward_traced();
/// let ids: Vec<usize> = trace.steps().iter().map(|s| s.id).collect();
/// assert_eq!(ids, [loss.id(), z.id(), y.id(), x.id()]);
/// assert_eq!(grads[x].item(), 4.0);          // y + 1
/// let text = trace.to_string();
/// assert!(text.contains("#3 loss = add(#2 z, #0 x)"));
/// assert!(text.contains("to y = #1 y: + 2"));  // grad_out * x
/// ```
#[derive(Clone, Debug)]
pub struct BackwardTrace<T: Float = f32> {
    output: usize,
    steps: Vec<TraceStep<T>>,
}

impl<T: Float> BackwardTrace<T> {
    /// The steps, in the order backward ran them.
    pub fn steps(&self) -> &[TraceStep<T>] {
        &self.steps
    }

    /// The id of the output backward started from.
    pub fn output(&self) -> usize {
        self.output
    }

    /// Prints the trace to standard output.
    pub fn print(&self) {
        print!("{self}");
    }
}

fn id_and_name(id: usize, name: &Option<String>) -> String {
    match name {
        Some(name) => format!("#{id} {name}"),
        None => format!("#{id}"),
    }
}

impl<T: Float> fmt::Display for BackwardTrace<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 6;
        writeln!(
            f,
            "backward pass from #{}: {} nodes, visited in reverse tape order",
            self.output,
            self.steps.len()
        )?;
        for step in &self.steps {
            writeln!(f)?;
            let who = id_and_name(step.id, &step.name);
            let value = format::tensor(&step.value, SHOWN);
            let grad = format::tensor(&step.grad_out, SHOWN);
            match (step.op, step.leaf) {
                (Some(op), _) => {
                    let names: Vec<String> = step
                        .inputs
                        .iter()
                        .map(|&i| match step.contributions.iter().find(|c| c.input == i) {
                            Some(c) => id_and_name(i, &c.name),
                            None => format!("#{i}"),
                        })
                        .collect();
                    let args = if step.args.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", step.args)
                    };
                    writeln!(f, "{who} = {op}({}{args})   value {value}", names.join(", "))?;
                    writeln!(f, "    incoming  grad_out = {grad}")?;
                    writeln!(f, "    rule      {}", step.rule.unwrap_or(""))?;
                    for c in &step.contributions {
                        writeln!(
                            f,
                            "    to {} = {}: + {}   (its gradient is now {})",
                            c.role,
                            id_and_name(c.input, &c.name),
                            format::tensor(&c.added, SHOWN),
                            format::tensor(&c.total, SHOWN)
                        )?;
                    }
                    if step.contributions.is_empty() {
                        writeln!(f, "    no input needs a gradient")?;
                    }
                }
                (None, leaf) => {
                    let kind = match leaf {
                        Some(LeafKind::Param) => "param",
                        _ => "input",
                    };
                    writeln!(f, "{who} ({kind} leaf)   value {value}")?;
                    writeln!(f, "    gradient  {grad}   (a leaf: nothing further back)")?;
                }
            }
        }
        Ok(())
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// Runs [`Var::backward`] and returns, with the gradients, a [`BackwardTrace`] of every
    /// step (see the [`viz`](crate::viz) module docs).
    ///
    /// # Panics
    /// If the value has more than one element; use [`Var::backward_traced_with_seed`] then.
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var_named("x", 0.5);
    /// let (grads, trace) = x.tanh().backward_traced();
    /// assert_eq!(trace.steps().len(), 2);
    /// assert_eq!(trace.steps()[1].grad_out.item(), grads[x].item());
    /// ```
    #[track_caller]
    pub fn backward_traced(self) -> (Gradients<T>, BackwardTrace<T>) {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "tapegrad: backward_traced: the output has shape {shape:?}, not one element; \
             use backward_traced_with_seed(seed) with a seed of that shape"
        );
        self.backward_traced_with_seed(Tensor::ones(&shape))
    }

    /// Like [`Var::backward_traced`], starting from `seed` (dLoss/dSelf, this var's shape).
    ///
    /// # Panics
    /// If the seed's shape differs from this var's.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var([1.0, 2.0]);
    /// let (grads, trace) = (x * 3.0).backward_traced_with_seed(Tensor::from_vec(vec![1.0, -1.0], &[2]));
    /// assert_eq!(grads[x].to_vec(), vec![3.0, -3.0]);
    /// assert_eq!(trace.steps()[0].grad_out.to_vec(), vec![1.0, -1.0]);
    /// ```
    #[track_caller]
    pub fn backward_traced_with_seed(self, seed: Tensor<T>) -> (Gradients<T>, BackwardTrace<T>) {
        let grads = self.backward_with_seed(seed);
        let trace = replay(self, &grads);
        (grads, trace)
    }
}

/// Walks the tape backward as [`Var::backward_with_seed`] does, recomputing each step with the
/// op's first-order rule.
fn replay<T: Float>(output: Var<'_, T>, grads: &Gradients<T>) -> BackwardTrace<T> {
    let tape = output.tape;
    let mut totals: HashMap<usize, Tensor<T>> = HashMap::new();
    let mut steps = Vec::new();
    for id in (0..=output.id()).rev() {
        let Some(grad_out) = grads.by_id(id) else {
            continue;
        };
        let var = Var { tape, id: id as u32 };
        let (node, op, args) = tape.node_with_op(id);
        let mut step = TraceStep {
            id,
            name: var.name(),
            op: op.and(var.op()),
            args: tape.args_text(id),
            leaf: op.is_none().then_some(node.leaf),
            inputs: var.input_ids(),
            value: tape.value_of(node.value()).clone(),
            grad_out: grad_out.clone(),
            rule: op.and(var.op_rule()),
            contributions: Vec::new(),
        };
        if let Some(op) = op {
            let (ids, extra) = tape.inputs_and_extra(id);
            let (grad_in, needs) = {
                let nodes = tape.nodes.borrow();
                let needs: Vec<bool> = ids.iter().map(|&j| nodes[j as usize].requires_grad).collect();
                let values: Vec<_> = ids
                    .iter()
                    .map(|&j| tape.value_of(nodes[j as usize].value()))
                    .collect();
                let out = tape.value_of(node.value());
                let grad_in = if node.has_many_inputs() {
                    let refs: Vec<&Tensor<T>> = values.iter().map(|v| &**v).collect();
                    op.vjp_many_tensor(&VjpMany {
                        args,
                        extra: extra.as_ref(),
                        inputs: &refs,
                        output: &*out,
                        grad_out,
                        needs: &needs,
                    })
                } else {
                    let (xv, yv) = (&*values[0], &*values[values.len() - 1]);
                    let cx = Vjp {
                        args,
                        extra: extra.as_ref(),
                        inputs: [xv, yv],
                        output: &*out,
                        grad_out,
                        needs: [needs[0], ids.len() > 1 && needs[1]],
                    };
                    op.vjp_tensor(&cx).into_iter().take(ids.len()).collect()
                };
                (grad_in, needs)
            };
            for (k, added) in grad_in.into_iter().enumerate() {
                let (Some(added), true) = (added, needs[k]) else {
                    continue;
                };
                let input = step.inputs[k];
                let total = match totals.get_mut(&input) {
                    Some(total) => {
                        total.add_assign_same_shape(&added);
                        total.clone()
                    }
                    None => {
                        totals.insert(input, added.clone());
                        added.clone()
                    }
                };
                step.contributions.push(Contribution {
                    input,
                    name: Var {
                        tape,
                        id: input as u32,
                    }
                    .name(),
                    role: match (ids.len() > 2, k) {
                        (true, _) => "input",
                        (false, 0) => "x",
                        _ => "y",
                    },
                    added,
                    total,
                });
            }
        }
        steps.push(step);
    }
    BackwardTrace {
        output: output.id(),
        steps,
    }
}
