//! The per-node gradient slots of a backward pass, reused from pass to pass without clearing.

use crate::Float;

/// One node's gradient: none yet, a rank-0 value inline, or an index into the gradient tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Slot<T> {
    Empty,
    Scalar(T),
    Stored(u32),
}

/// What a [`RawSlot`] holds, in the low bits of its tag.
const SCALAR: u32 = 1;
const STORED: u32 = 2;
const KIND_BITS: u32 = 2;

/// A slot as stored: `tag` is `pass << KIND_BITS | kind`, so that a slot written by an earlier
/// pass reads as empty. 16 bytes in f64, like the enum it replaces.
#[derive(Clone, Copy, Debug)]
struct RawSlot<T> {
    tag: u32,
    index: u32,
    scalar: T,
}

/// One [`Slot`] per node for one backward pass. Starting a pass does not clear the slots, which
/// wrote a megabyte per step of a micrograd-style network (7% of its time): each slot carries
/// the number of the pass that wrote it, and anything older reads as [`Slot::Empty`].
#[derive(Clone, Debug)]
pub(crate) struct Slots<T> {
    /// The current pass, from 1 (0 marks slots never written).
    pass: u32,
    raw: Vec<RawSlot<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            pass: 0,
            raw: Vec::new(),
        }
    }
}

impl<T: Float> Slots<T> {
    /// Starts a new pass over `len` nodes: every slot reads as empty.
    pub(crate) fn begin(&mut self, len: usize) {
        self.pass += 1;
        if self.pass >= 1 << (32 - KIND_BITS) {
            // Pass numbers are exhausted (after a billion passes): clear once and start over.
            self.raw.clear();
            self.pass = 1;
        }
        let never_written = RawSlot {
            tag: 0,
            index: 0,
            scalar: T::ZERO,
        };
        self.raw.truncate(len);
        self.raw.resize(len, never_written);
    }

    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }

    /// The capacity of the underlying buffer (to keep the larger of two when recycling).
    pub(crate) fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    fn tag(&self, kind: u32) -> u32 {
        self.pass << KIND_BITS | kind
    }

    /// Slot `i`; `None` past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<Slot<T>> {
        let raw = self.raw.get(i)?;
        Some(if raw.tag == self.tag(SCALAR) {
            Slot::Scalar(raw.scalar)
        } else if raw.tag == self.tag(STORED) {
            Slot::Stored(raw.index)
        } else {
            Slot::Empty
        })
    }

    /// Slot `i`, which must exist: the backward loop's read.
    #[inline(always)]
    pub(crate) fn at(&self, i: usize) -> Slot<T> {
        match self.get(i) {
            Some(slot) => slot,
            None => panic!("tapegrad: gradient slot {i} of {}", self.len()),
        }
    }

    /// The rank-0 gradient in slot `i`, if it holds one: the backward loop's one comparison.
    #[inline(always)]
    pub(crate) fn scalar(&self, i: usize) -> Option<T> {
        let raw = &self.raw[i];
        (raw.tag == self.tag(SCALAR)).then_some(raw.scalar)
    }

    /// Adds a rank-0 gradient into slot `i` (which holds a rank-0 gradient or none).
    #[inline(always)]
    pub(crate) fn add_scalar(&mut self, i: usize, g: T) {
        let tag = self.tag(SCALAR);
        let raw = &mut self.raw[i];
        raw.scalar = if raw.tag == tag { raw.scalar + g } else { g };
        raw.tag = tag;
    }

    /// Writes slot `i`.
    pub(crate) fn set(&mut self, i: usize, slot: Slot<T>) {
        let (kind, index, scalar) = match slot {
            Slot::Empty => (0, 0, T::ZERO),
            Slot::Scalar(v) => (SCALAR, 0, v),
            Slot::Stored(k) => (STORED, k, T::ZERO),
        };
        self.raw[i] = RawSlot {
            tag: if kind == 0 { 0 } else { self.tag(kind) },
            index,
            scalar,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_pass_reads_empty_without_clearing() {
        let mut slots = Slots::<f64>::default();
        slots.begin(3);
        slots.add_scalar(0, 1.5);
        slots.add_scalar(0, 2.0);
        slots.set(2, Slot::Stored(7));
        assert_eq!(
            (0..3).map(|i| slots.at(i)).collect::<Vec<_>>(),
            [Slot::Scalar(3.5), Slot::Empty, Slot::Stored(7)]
        );
        slots.begin(4);
        assert_eq!((0..4).map(|i| slots.at(i)).collect::<Vec<_>>(), [Slot::Empty; 4]);
        assert_eq!(slots.get(4), None);
        slots.add_scalar(1, -1.0);
        assert_eq!(slots.scalar(1), Some(-1.0));
        assert_eq!(slots.scalar(0), None);
    }

    #[test]
    fn pass_numbers_wrap_by_clearing() {
        let mut slots = Slots::<f32>::default();
        slots.begin(2);
        slots.add_scalar(1, 4.0);
        slots.pass = (1 << (32 - KIND_BITS)) - 1;
        slots.add_scalar(0, 1.0);
        slots.begin(2);
        assert_eq!(slots.pass, 1);
        assert_eq!([slots.at(0), slots.at(1)], [Slot::Empty; 2]);
    }

    #[test]
    fn slots_stay_small() {
        assert_eq!(std::mem::size_of::<RawSlot<f64>>(), 16);
    }
}
