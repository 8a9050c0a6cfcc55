//! Momentum as a reusable transform of a gradient (burn's `momentum.rs`): [`Sgd`](super::Sgd)
//! uses it with dampening and Nesterov, [`RmsProp`](super::RmsProp) on its scaled gradient.

use crate::Float;

/// Heavy-ball momentum μ with dampening τ and optional Nesterov look-ahead, per element:
///
/// ```text
/// b ← g                      on the first step (the buffer starts as a copy of the gradient)
/// b ← μ·b + (1 − τ)·g        afterwards
/// d = g + μ·b  (Nesterov)    or  d = b
/// ```
///
/// The coefficients are rounded to the element type once. `FIRST` and `NESTEROV` are constants so
/// that callers choose the variant outside their loops and the loops vectorise.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Momentum<T> {
    momentum: T,
    one_minus_dampening: T,
}

impl<T: Float> Momentum<T> {
    pub(crate) fn new(momentum: f64, dampening: f64) -> Self {
        Momentum {
            momentum: T::from_f64(momentum),
            one_minus_dampening: T::from_f64(1.0 - dampening),
        }
    }

    /// Updates the buffer element `buf` with the gradient element `g` and returns the direction.
    #[inline(always)]
    pub(crate) fn apply<const FIRST: bool, const NESTEROV: bool>(&self, g: T, buf: &mut T) -> T {
        *buf = if FIRST {
            g
        } else {
            *buf * self.momentum + g * self.one_minus_dampening
        };
        if NESTEROV { g + *buf * self.momentum } else { *buf }
    }
}
