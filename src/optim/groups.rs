//! [`ParamGroups`]: the parameters an optimizer updates, in groups with their own learning rate
//! and weight decay.

use std::collections::HashSet;

use super::state::{self, GroupState, OptimizerState};
use super::validate;
use crate::{Error, Float, Param};

/// A group of parameters to add to an optimizer, with an optional learning rate and weight decay
/// of its own (otherwise the optimizer's config gives them).
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::ParamGroup;
///
/// let (w, b) = (Param::new(Tensor::<f32>::zeros(&[3])), Param::new(Tensor::<f32>::zeros(&[1])));
/// let opt = Adam::with_groups(
///     vec![
///         ParamGroup::new(vec![w.clone()]),                        // lr 1e-3, weight decay 0.01
///         ParamGroup::new(vec![b.clone()]).lr(1e-2).weight_decay(0.0),
///     ],
///     AdamConfig { weight_decay: 0.01, ..Default::default() },
/// );
/// assert_eq!(opt.param_groups().lr(1), 1e-2);
/// assert_eq!(opt.param_groups().weight_decay(0), 0.01);
/// ```
#[derive(Clone, Debug)]
pub struct ParamGroup<T: Float = f32> {
    params: Vec<Param<T>>,
    lr: Option<f64>,
    weight_decay: Option<f64>,
}

impl<T: Float> ParamGroup<T> {
    /// A group taking its learning rate and weight decay from the optimizer's config.
    pub fn new(params: Vec<Param<T>>) -> Self {
        ParamGroup {
            params,
            lr: None,
            weight_decay: None,
        }
    }

    /// Gives the group its own learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Gives the group its own weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// One group inside an optimizer, with its values resolved.
#[derive(Clone, Debug)]
pub(crate) struct Group<T: Float> {
    pub(crate) params: Vec<Param<T>>,
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
}

/// The parameter groups of an optimizer: each group's parameters, learning rate and weight decay.
///
/// Obtained from [`Optimizer::param_groups`](super::Optimizer::param_groups); schedules
/// ([`LrScheduler`](super::LrScheduler)) set each group's rate through it.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::optim::ParamGroup;
///
/// let (a, b) = (Param::new(Tensor::<f64>::scalar(1.0)), Param::new(Tensor::<f64>::scalar(1.0)));
/// let mut opt = Sgd::new(vec![a.clone()], SgdConfig { lr: 0.1, ..Default::default() });
/// opt.add_param_group(ParamGroup::new(vec![b.clone()]).lr(0.5));
/// let groups = opt.param_groups_mut();
/// groups.set_lr(0, 0.2);
/// assert_eq!((groups.len(), groups.lr(0), groups.lr(1)), (2, 0.2, 0.5));
/// assert!(groups.params(1)[0].same_as(&b));
/// ```
#[derive(Clone, Debug)]
pub struct ParamGroups<T: Float = f32> {
    optimizer: &'static str,
    default_lr: f64,
    /// `None` for an optimizer without weight decay (L-BFGS): setting one is an error.
    default_weight_decay: Option<f64>,
    single: bool,
    groups: Vec<Group<T>>,
}

impl<T: Float> ParamGroups<T> {
    /// Groups for `optimizer`, whose config gives `lr` and `weight_decay` to groups that set none.
    /// The config's values are validated by the optimizer beforehand.
    #[track_caller]
    pub(crate) fn new(
        optimizer: &'static str,
        lr: f64,
        weight_decay: Option<f64>,
        single: bool,
        groups: Vec<ParamGroup<T>>,
    ) -> Self {
        let mut out = ParamGroups {
            optimizer,
            default_lr: lr,
            default_weight_decay: weight_decay,
            single,
            groups: Vec::new(),
        };
        assert!(
            !groups.is_empty() && groups.iter().any(|g| !g.params.is_empty()),
            "tapegrad: {optimizer}: got an empty parameter list"
        );
        for group in groups {
            out.push(group);
        }
        out
    }

    /// The optimizer's name, for messages.
    pub(crate) fn optimizer(&self) -> &'static str {
        self.optimizer
    }

    pub(crate) fn groups(&self) -> &[Group<T>] {
        &self.groups
    }

    /// Every parameter, group after group.
    pub(crate) fn all_params(&self) -> impl Iterator<Item = &Param<T>> {
        self.groups.iter().flat_map(|g| g.params.iter())
    }

    /// Adds a group, resolving its values from the defaults and validating them.
    #[track_caller]
    pub(crate) fn push(&mut self, group: ParamGroup<T>) {
        let name = self.optimizer;
        let index = self.groups.len();
        assert!(
            !(self.single && index > 0),
            "tapegrad: {name}: takes a single parameter group (its parameters form one vector); \
             put every parameter in it"
        );
        let lr = group.lr.unwrap_or(self.default_lr);
        validate::non_negative(name, &format!("param_groups[{index}].lr"), lr);
        let weight_decay = match (group.weight_decay, self.default_weight_decay) {
            (Some(wd), Some(_)) => {
                validate::non_negative(name, &format!("param_groups[{index}].weight_decay"), wd);
                wd
            }
            (None, Some(default)) => default,
            (Some(wd), None) => panic!("tapegrad: {name}: has no weight decay, but group {index} sets {wd}"),
            (None, None) => 0.0,
        };
        let mut seen: HashSet<u64> = self.all_params().map(Param::id).collect();
        for (i, p) in group.params.iter().enumerate() {
            assert!(
                seen.insert(p.id()),
                "tapegrad: {name}: parameter {i} of group {index} (shape {:?}) is already in the \
                 parameter groups; give each parameter once",
                p.shape()
            );
        }
        self.groups.push(Group {
            params: group.params,
            lr,
            weight_decay,
        });
    }

    /// The number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// `true` when there is no group (never, for an optimizer: it needs parameters).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    #[track_caller]
    fn group(&self, group: usize) -> &Group<T> {
        let Some(g) = self.groups.get(group) else {
            panic!(
                "tapegrad: {}: there is no parameter group {group} (it has {})",
                self.optimizer,
                self.groups.len()
            )
        };
        g
    }

    /// The learning rate of group `group`.
    ///
    /// # Panics
    /// If there is no such group.
    #[track_caller]
    pub fn lr(&self, group: usize) -> f64 {
        self.group(group).lr
    }

    /// Sets the learning rate of group `group`.
    ///
    /// # Panics
    /// If there is no such group, or `lr` is negative or not finite.
    #[track_caller]
    pub fn set_lr(&mut self, group: usize, lr: f64) {
        self.group(group);
        validate::non_negative(self.optimizer, &format!("param_groups[{group}].lr"), lr);
        self.groups[group].lr = lr;
    }

    /// Sets the learning rate of every group.
    #[track_caller]
    pub(crate) fn set_lr_all(&mut self, lr: f64) {
        validate::non_negative(self.optimizer, "lr", lr);
        for g in &mut self.groups {
            g.lr = lr;
        }
    }

    /// The weight decay of group `group` (0 for an optimizer without weight decay).
    ///
    /// # Panics
    /// If there is no such group.
    #[track_caller]
    pub fn weight_decay(&self, group: usize) -> f64 {
        self.group(group).weight_decay
    }

    /// Sets the weight decay of group `group`.
    ///
    /// # Panics
    /// If there is no such group, `weight_decay` is negative or not finite, or the optimizer has
    /// no weight decay.
    #[track_caller]
    pub fn set_weight_decay(&mut self, group: usize, weight_decay: f64) {
        self.group(group);
        let name = self.optimizer;
        assert!(
            self.default_weight_decay.is_some(),
            "tapegrad: {name}: has no weight decay to set"
        );
        validate::non_negative(name, &format!("param_groups[{group}].weight_decay"), weight_decay);
        self.groups[group].weight_decay = weight_decay;
    }

    /// The parameters of group `group`.
    ///
    /// # Panics
    /// If there is no such group.
    #[track_caller]
    pub fn params(&self, group: usize) -> &[Param<T>] {
        &self.group(group).params
    }

    /// Each group's learning rate, in order.
    pub fn lrs(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.lr).collect()
    }

    pub(crate) fn export(&self) -> Vec<GroupState> {
        self.groups
            .iter()
            .map(|g| GroupState {
                lr: g.lr,
                weight_decay: g.weight_decay,
                num_params: g.params.len(),
            })
            .collect()
    }

    /// Checks that `state` was exported from this kind of optimizer with the same group layout.
    pub(crate) fn check_import(&self, state: &OptimizerState) -> Result<(), Error> {
        let name = self.optimizer;
        if state.optimizer != name {
            return Err(state::invalid(
                name,
                &format!("the state was exported by {}", state.optimizer),
            ));
        }
        let layout: Vec<usize> = self.groups.iter().map(|g| g.params.len()).collect();
        let saved: Vec<usize> = state.groups.iter().map(|g| g.num_params).collect();
        if layout != saved {
            return Err(state::invalid(
                name,
                &format!("the state has groups of {saved:?} parameters, the optimizer {layout:?}"),
            ));
        }
        if state.params.len() != layout.iter().sum::<usize>() {
            return Err(state::invalid(
                name,
                &format!(
                    "the state has {} parameter entries for {} parameters",
                    state.params.len(),
                    layout.iter().sum::<usize>()
                ),
            ));
        }
        for (i, g) in state.groups.iter().enumerate() {
            // Finite also once rounded to the parameters' type (a rate of 1e300 is an f64 but an
            // infinite f32, which makes every parameter NaN on the next step).
            let valid = |x: f64| x.is_finite() && x >= 0.0 && T::from_f64(x).is_finite();
            if !valid(g.lr) || !valid(g.weight_decay) {
                return Err(state::invalid(
                    name,
                    &format!(
                        "group {i} has lr {:?} and weight decay {:?}; both must be finite and \
                         non-negative, also as {}",
                        g.lr,
                        g.weight_decay,
                        T::NAME
                    ),
                ));
            }
            if self.default_weight_decay.is_none() && g.weight_decay != 0.0 {
                return Err(state::invalid(name, &format!("group {i} has a weight decay")));
            }
        }
        Ok(())
    }

    /// Takes each group's rate and decay from a checked state.
    pub(crate) fn import_hyper(&mut self, state: &OptimizerState) {
        for (g, saved) in self.groups.iter_mut().zip(&state.groups) {
            g.lr = saved.lr;
            g.weight_decay = saved.weight_decay;
        }
    }
}
