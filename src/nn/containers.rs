//! [`Module`] for the values a model's fields hold besides layers: a [`Param`] itself, a
//! [`Generator`], and `Vec`s, arrays, `Option`s, `Box`es and tuples of modules, so that
//! `#[derive(Module)]` visits any of them (PyTorch's `nn.ModuleList`, `nn.ParameterList` and
//! optional sub-modules).
//!
//! Names follow PyTorch: the items of a `Vec`, an array or a tuple are numbered (`blocks.0.weight`),
//! an `Option` and a `Box` add nothing (`head.weight` when the head is `Some`), a `Param` field
//! is named by the field alone (`scale`).
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::rand::{SeedableRng, rngs::StdRng};
//!
//! #[derive(Module)]
//! struct Net<T: Float> {
//!     blocks: Vec<Linear<T>>,
//!     head: Option<Linear<T>>,
//!     scale: Param<T>,
//!     pair: (LayerNorm<T>, LayerNorm<T>),
//! }
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let net = Net::<f32> {
//!     blocks: vec![Linear::new(2, 2, &mut rng), Linear::new(2, 2, &mut rng)],
//!     head: None,
//!     scale: Param::new(Tensor::scalar(1.0)),
//!     pair: (LayerNorm::new(2), LayerNorm::new(2)),
//! };
//! let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, [
//!     "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "scale",
//!     "pair.0.weight", "pair.0.bias", "pair.1.weight", "pair.1.bias",
//! ]);
//! ```

use super::{Generator, Module, prefixed};
use crate::{Float, Param};

/// A parameter is a leaf: itself, under the empty name (its field's name, in a struct).
impl<T: Float> Module<T> for Param<T> {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        vec![(String::new(), self.clone())]
    }

    /// A parameter has no mode.
    fn train(&mut self, _mode: bool) {}

    /// Always `true`: a parameter has no mode, so it never holds a module in evaluation.
    fn is_training(&self) -> bool {
        true
    }
}

/// A generator is a leaf of [`Module::named_generators`], under the empty name.
impl<T: Float> Module<T> for Generator {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        Vec::new()
    }

    fn named_generators(&self) -> Vec<(String, &Generator)> {
        vec![(String::new(), self)]
    }

    fn train(&mut self, _mode: bool) {}

    fn is_training(&self) -> bool {
        true
    }
}

/// The items of a sequence numbered from 0, each under its index.
fn numbered<'a, T: Float, M: Module<T> + ?Sized + 'a, H>(
    items: impl Iterator<Item = &'a M>,
    list: impl Fn(&'a M) -> Vec<(String, H)>,
) -> Vec<(String, H)> {
    items
        .enumerate()
        .flat_map(|(i, m)| prefixed(&i.to_string(), list(m)))
        .collect()
}

macro_rules! sequence_module {
    ($([$($generics:tt)*] $ty:ty;)*) => {
        $(
            impl<T: Float, $($generics)*> Module<T> for $ty {
                fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                    numbered(self.iter(), |m| m.named_parameters())
                }

                fn named_buffers(&self) -> Vec<(String, Param<T>)> {
                    numbered(self.iter(), |m| m.named_buffers())
                }

                fn named_generators(&self) -> Vec<(String, &Generator)> {
                    numbered(self.iter(), |m| m.named_generators())
                }

                fn train(&mut self, mode: bool) {
                    for m in self.iter_mut() {
                        m.train(mode);
                    }
                }

                /// `true` when every item is in training mode (also when there is none).
                fn is_training(&self) -> bool {
                    self.iter().all(|m| m.is_training())
                }
            }
        )*
    };
}

sequence_module! {
    [M: Module<T>] Vec<M>;
    [M: Module<T>, const N: usize] [M; N];
}

macro_rules! transparent_module {
    ($([$($generics:tt)*] $ty:ty;)*) => {
        $(
            impl<T: Float, $($generics)*> Module<T> for $ty {
                fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                    self.iter().flat_map(|m| m.named_parameters()).collect()
                }

                fn named_buffers(&self) -> Vec<(String, Param<T>)> {
                    self.iter().flat_map(|m| m.named_buffers()).collect()
                }

                fn named_generators(&self) -> Vec<(String, &Generator)> {
                    self.iter().flat_map(|m| m.named_generators()).collect()
                }

                fn train(&mut self, mode: bool) {
                    for m in self.iter_mut() {
                        m.train(mode);
                    }
                }

                fn is_training(&self) -> bool {
                    self.iter().all(|m| m.is_training())
                }
            }
        )*
    };
}

transparent_module! {
    [M: Module<T>] Option<M>;
}

/// A boxed module is the module itself (so `Box<dyn Forward<T>>` items of a
/// [`Sequential`](super::Sequential) are modules too).
impl<T: Float, M: Module<T> + ?Sized> Module<T> for Box<M> {
    fn named_parameters(&self) -> Vec<(String, Param<T>)> {
        (**self).named_parameters()
    }

    fn named_buffers(&self) -> Vec<(String, Param<T>)> {
        (**self).named_buffers()
    }

    fn named_generators(&self) -> Vec<(String, &Generator)> {
        (**self).named_generators()
    }

    fn train(&mut self, mode: bool) {
        (**self).train(mode);
    }

    fn is_training(&self) -> bool {
        (**self).is_training()
    }
}

macro_rules! tuple_module {
    ($(($($name:ident $index:tt),+);)*) => {
        $(
            impl<T: Float, $($name: Module<T>),+> Module<T> for ($($name,)+) {
                fn named_parameters(&self) -> Vec<(String, Param<T>)> {
                    let mut out = Vec::new();
                    $(out.extend(prefixed(stringify!($index), self.$index.named_parameters()));)+
                    out
                }

                fn named_buffers(&self) -> Vec<(String, Param<T>)> {
                    let mut out = Vec::new();
                    $(out.extend(prefixed(stringify!($index), self.$index.named_buffers()));)+
                    out
                }

                fn named_generators(&self) -> Vec<(String, &Generator)> {
                    let mut out = Vec::new();
                    $(out.extend(prefixed(stringify!($index), self.$index.named_generators()));)+
                    out
                }

                fn train(&mut self, mode: bool) {
                    $(self.$index.train(mode);)+
                }

                fn is_training(&self) -> bool {
                    true $(&& self.$index.is_training())+
                }
            }
        )*
    };
}

tuple_module! {
    (A 0);
    (A 0, B 1);
    (A 0, B 1, C 2);
    (A 0, B 1, C 2, D 3);
}
