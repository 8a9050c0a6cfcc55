//! Gradient accumulation over micro-batches, as PyTorch users do with `.grad +=`: several
//! backward passes add their parameter gradients into one [`Gradients`], then one optimizer step.

use std::sync::OnceLock;

use super::Gradients;
use crate::param::ParamMap;
use crate::{Float, Param, Tensor};

impl<T: Float> Default for Gradients<T> {
    /// Empty gradients, of no tape: the starting point of an accumulation (`acc += &grads`).
    ///
    /// ```
    /// use tapegrad::Gradients;
    /// let acc = Gradients::<f32>::default();
    /// assert_eq!(acc.params().count(), 0);
    /// ```
    fn default() -> Self {
        Gradients {
            tape_id: usize::MAX,
            slots: Default::default(),
            tensors: Vec::new(),
            scalar_views: OnceLock::new(),
            by_param: Vec::new(),
            param_index: ParamMap::default(),
            recycle: None,
        }
    }
}

impl<T: Float> Gradients<T> {
    /// Adds `other`'s parameter gradients into these, parameter by parameter (the gradients of
    /// several backward passes, possibly on different tapes, summed as PyTorch accumulates into
    /// `.grad`): a parameter only `other` has is added with its gradient. Then an optimizer step
    /// on the sum is one step over every pass's batch: with a mean loss per micro-batch of equal
    /// size, [`scale`](Gradients::scale) the sum by `1/k` to get the mean over the whole batch.
    ///
    /// Only the per-parameter gradients (what [`param`](Gradients::param),
    /// [`params`](Gradients::params) and optimizers read) are accumulated; the gradients by var
    /// (`grads[x]`) stay those of the pass these gradients came from. `grads += &other` does
    /// the same.
    ///
    /// # Panics
    /// If a parameter has gradients of two different shapes here and in `other` (the message
    /// names the parameter and both shapes).
    ///
    /// ```
    /// use tapegrad::{Gradients, Param, Tape, Tensor};
    /// let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
    /// let batch = [[1.0, 0.0], [0.0, 3.0], [2.0, 2.0], [1.0, 1.0]];
    /// let mut acc = Gradients::default();
    /// for micro in batch.chunks(2) {
    ///     let tape = Tape::new();
    ///     let x = tape.constant(Tensor::from_vec(micro.concat(), &[2, 2]));
    ///     let loss = (x * tape.param(&w)).sum_axis(1, false).square().mean();
    ///     acc += &loss.backward();
    /// }
    /// acc.scale(0.5); // the mean over 2 micro-batches: the gradient of the mean over all 4 rows
    /// let tape = Tape::new();
    /// let x = tape.constant(Tensor::from_vec(batch.concat(), &[4, 2]));
    /// let full = (x * tape.param(&w)).sum_axis(1, false).square().mean().backward();
    /// assert_eq!(acc.param(&w).unwrap().to_vec(), full.param(&w).unwrap().to_vec());
    /// ```
    #[track_caller]
    pub fn accumulate(&mut self, other: &Gradients<T>) {
        for (param, g) in &other.by_param {
            match self.param_index.get(&param.id()) {
                Some(&k) => {
                    let acc = &mut self.by_param[k].1;
                    assert!(
                        acc.shape() == g.shape(),
                        "tapegrad: Gradients::accumulate: parameter {} has a gradient of shape {:?} \
                         here but {:?} in the gradients added",
                        param.id(),
                        acc.shape(),
                        g.shape()
                    );
                    acc.add_assign_same_shape(g);
                }
                None => {
                    self.param_index.insert(param.id(), self.by_param.len());
                    self.by_param.push((param.clone(), g.clone()));
                }
            }
        }
    }

    /// Sets the gradient of `param` to `grad`, returning the gradient it had (as
    /// `HashMap::insert` does). A parameter that had none is added after the others, so
    /// optimizers step it: data-parallel training uses this to give a parameter that only some
    /// ranks used the gradient averaged over all of them.
    ///
    /// # Panics
    /// If `grad`'s shape is not `param`'s (the message names the parameter and both shapes).
    ///
    /// ```
    /// use tapegrad::{Gradients, Param, Tensor};
    /// let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
    /// let mut grads = Gradients::default();
    /// assert!(grads.insert_param(&w, Tensor::from_vec(vec![0.5, 0.5], &[2])).is_none());
    /// assert_eq!(grads.param(&w).unwrap().to_vec(), [0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn insert_param(&mut self, param: &Param<T>, grad: Tensor<T>) -> Option<Tensor<T>> {
        let shape = param.shape();
        assert!(
            grad.shape() == shape.as_slice(),
            "tapegrad: Gradients::insert_param: parameter {} has shape {:?} but the gradient \
             given has shape {:?}",
            param.id(),
            shape,
            grad.shape()
        );
        match self.param_index.get(&param.id()) {
            Some(&k) => Some(std::mem::replace(&mut self.by_param[k].1, grad)),
            None => {
                self.param_index.insert(param.id(), self.by_param.len());
                self.by_param.push((param.clone(), grad));
                None
            }
        }
    }

    /// Multiplies every parameter gradient by `factor` (`1/k` after accumulating `k`
    /// micro-batches of a mean loss). The gradients by var are left as they are.
    ///
    /// ```
    /// use tapegrad::{Param, Tape, Tensor};
    /// let w = Param::new(Tensor::<f64>::scalar(3.0));
    /// let tape = Tape::new();
    /// let mut grads = (tape.param(&w) * 4.0).backward();
    /// grads.scale(0.25);
    /// assert_eq!(grads.param(&w).unwrap().item(), 1.0);
    /// ```
    pub fn scale(&mut self, factor: T) {
        for (_, g) in &mut self.by_param {
            for x in g.as_mut_slice() {
                *x *= factor;
            }
        }
    }
}

impl<T: Float> std::ops::AddAssign<&Gradients<T>> for Gradients<T> {
    /// [`Gradients::accumulate`].
    #[track_caller]
    fn add_assign(&mut self, other: &Gradients<T>) {
        self.accumulate(other);
    }
}

#[cfg(test)]
mod tests {
    use crate::{Gradients, Param, Tape, Tensor};

    #[test]
    fn mismatched_shapes_name_the_parameter_and_both_shapes() {
        let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
        let tape = Tape::new();
        let mut a = tape.param(&w).sum().backward();
        let b = tape.param(&w).sum().backward();
        // Not reachable through the public API (a parameter keeps its shape): forced here.
        a.by_param[0].1 = Tensor::zeros(&[3]);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a += &b)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains(&format!("parameter {}", w.id())), "{msg}");
        assert!(msg.contains("[3]") && msg.contains("[2]"), "{msg}");
    }

    #[test]
    fn parameters_only_in_the_other_gradients_are_added() {
        let (u, w) = (
            Param::new(Tensor::<f64>::scalar(1.0)),
            Param::new(Tensor::scalar(2.0)),
        );
        let mut acc = Gradients::default();
        let tape = Tape::new();
        acc += &(tape.param(&u) * 3.0).backward();
        let tape = Tape::new();
        acc += &(tape.param(&u) * tape.param(&w)).backward();
        assert_eq!(acc.param(&u).unwrap().item(), 3.0 + 2.0);
        assert_eq!(acc.param(&w).unwrap().item(), 1.0);
        acc.scale(2.0);
        assert_eq!(acc.param(&w).unwrap().item(), 2.0);
    }

    #[test]
    fn insert_param_replaces_or_adds_and_optimizers_step_the_added_one() {
        use crate::optim::{Optimizer, Sgd, SgdConfig};
        let (u, w) = (
            Param::new(Tensor::<f64>::scalar(1.0)),
            Param::new(Tensor::scalar(2.0)),
        );
        let tape = Tape::new();
        let mut grads = (tape.param(&u) * 3.0).backward();
        let old = grads.insert_param(&u, Tensor::scalar(5.0));
        assert_eq!(old.map(|t| t.item()), Some(3.0));
        assert!(grads.insert_param(&w, Tensor::scalar(-1.0)).is_none());
        let config = SgdConfig {
            lr: 0.1,
            ..Default::default()
        };
        let mut opt = Sgd::new(vec![u.clone(), w.clone()], config);
        opt.step(&grads);
        assert!((u.value().item() - (1.0 - 0.5)).abs() < 1e-15);
        assert!((w.value().item() - (2.0 + 0.1)).abs() < 1e-15);
    }

    #[test]
    fn insert_param_rejects_a_gradient_of_another_shape() {
        let w = Param::new(Tensor::<f64>::from_vec(vec![1.0, 2.0], &[2]));
        let mut grads = Gradients::default();
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            grads.insert_param(&w, Tensor::zeros(&[3]))
        }))
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("insert_param") && msg.contains("[3]") && msg.contains("[2]"),
            "{msg}"
        );
    }
}
